import { Context, Effect, Layer, Schema } from "effect"

export const PullStage = Schema.Literal(
  "resolve",
  "fetch",
  "flatten",
  "size",
  // banger writes the ext4 itself (no mkfs): the stage is named for what it does.
  "write-ext4",
  "stage-boot",
  "publish",
  // A VM's create and start.
  "work-disk",
  "configure",
  "boot",
  "ready",
  /** Waiting for the guest's sshd to answer, after the ready line. */
  "ssh",
  // Register and promote: "inspect" their sources, "copy" them into the store.
  "inspect",
  "copy",
  /** A kernel pull: finding and copying the kernel, initrd and modules out of the flattened image. */
  "extract"
)
export type PullStage = typeof PullStage.Type

/**
 * One operation can pull a kernel, then an image (`image pull CATALOG_NAME`), then make a VM from
 * them (`vm create` of a catalog image): each is a phase.
 */
export const PullPhase = Schema.Literal("kernel", "image", "vm")
export type PullPhase = typeof PullPhase.Type

/** What a pull reports as it goes; a Schema so the daemon can stream it to clients. */
export const PullEvent = Schema.Union(
  /** A new phase begins: stages and layers reported after it belong to it (layers start over). */
  Schema.TaggedStruct("PhaseStarted", { phase: PullPhase, name: Schema.String }),
  Schema.TaggedStruct("StageStarted", { stage: PullStage }),
  Schema.TaggedStruct("LayerProgress", {
    index: Schema.Number,
    count: Schema.Number,
    digest: Schema.String,
    bytesDone: Schema.Number,
    bytesTotal: Schema.Number,
    /** True when the layer came from the blob cache without a download. */
    cached: Schema.Boolean
  }),
  /** The registry client is about to try again: why, and which try of how many. */
  Schema.TaggedStruct("Retrying", {
    /** What is being fetched, as the CLI names it: `layer 2/3`, `resolve`. */
    what: Schema.String,
    reason: Schema.String,
    attempt: Schema.Number,
    of: Schema.Number
  })
)
export type PullEvent = typeof PullEvent.Type

export class PullProgress extends Context.Tag("banger/PullProgress")<
  PullProgress,
  { readonly report: (event: PullEvent) => Effect.Effect<void> }
>() {
  static readonly silent = Layer.succeed(PullProgress, { report: () => Effect.void })
}

export const reportStage = (stage: PullStage) =>
  Effect.flatMap(PullProgress, (progress) => progress.report({ _tag: "StageStarted", stage }))

export const reportPhase = (phase: PullPhase, name: string) =>
  Effect.flatMap(PullProgress, (progress) => progress.report({ _tag: "PhaseStarted", phase, name }))

/** `layer 2/3: no data for 30s, retrying (2 of 4)`: the CLI's line and the web UI's. */
export const retryLine = (retry: {
  readonly what: string
  readonly reason: string
  readonly attempt: number
  readonly of: number
}) => `${retry.what}: ${retry.reason}, retrying (${retry.attempt} of ${retry.of})`
