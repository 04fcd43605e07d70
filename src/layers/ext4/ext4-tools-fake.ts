import * as fs from "node:fs/promises"
import { Effect, Exit, identity } from "effect"
import type { ContentSink, StoredContent } from "../../domain/content.js"
import { type FlatEntries, isEntryList } from "../../domain/entry-list.js"
import { Ext4Error } from "../../domain/errors.js"
import type { BuildExt4Options, Ext4ToolsShape, ImageDraft, WriteImageOptions } from "./ext4-tools.js"

export const FAKE_IMAGE_MAGIC = "banger-fake-ext4"

/** What the fake wrote: one per `build` or draft `write`. */
export interface FakeImage {
  readonly output: string
  readonly sizeBytes: number
  readonly inodes: number | undefined
  readonly label: string | undefined
  readonly entries: number
}

export interface Ext4ToolsFake {
  readonly tools: Ext4ToolsShape
  readonly builds: Array<BuildExt4Options>
  readonly images: Array<FakeImage>
  readonly checks: Array<string>
  readonly repairs: Array<string>
  readonly grows: Array<{ readonly image: string; readonly sizeBytes: number }>
  /** Set to make the next calls fail (they are still recorded). */
  failBuild: Ext4Error | undefined
  failCheck: Ext4Error | undefined
  failRepair: Ext4Error | undefined
  failGrow: Ext4Error | undefined
}

/** Contents the fake only counts. */
const countingSink = (): ContentSink => ({
  begin: (size) => ({
    write: () => undefined,
    skip: () => undefined,
    finish: (): StoredContent => ({ size }),
    abandon: () => undefined
  }),
  release: () => undefined
})

const sizesOf = (entries: FlatEntries) =>
  isEntryList(entries)
    ? Array.from({ length: entries.length }, (_, index) => entries.size(index))
    : entries.map((entry) => entry.size)

/** A tree needs its bytes rounded up to blocks, and 1 MiB for the rest, in the fake's arithmetic. */
const fakeRequired = (sizes: ReadonlyArray<number>) =>
  2 ** 20 + sizes.reduce((sum, size) => sum + Math.ceil(size / 4096) * 4096, 0)

/**
 * A stand-in for Ext4Tools. Images are `banger-fake-ext4 {json}` (size, inodes, label, entry
 * count) extended sparsely to their size; `check` accepts a file that starts with that marker and
 * fails for anything else, so a pipeline that checks the wrong path is caught.
 */
export const makeExt4ToolsFake = (): Ext4ToolsFake => {
  const writeImage = (image: FakeImage) =>
    Effect.suspend(() => {
      fake.images.push(image)
      if (fake.failBuild !== undefined) return Effect.fail(fake.failBuild)
      return Effect.tryPromise({
        try: async () => {
          const { output, ...summary } = image
          const marker = Buffer.from(`${FAKE_IMAGE_MAGIC} ${JSON.stringify(summary)}\n`)
          await fs.writeFile(output, marker)
          if (image.sizeBytes > marker.length) await fs.truncate(output, image.sizeBytes)
        },
        catch: (error) =>
          new Ext4Error({ tool: "ext4 writer", reason: `fake write failed: ${String(error)}`, stderr: "" })
      })
    })

  const fake: Ext4ToolsFake = {
    builds: [],
    images: [],
    checks: [],
    repairs: [],
    grows: [],
    failBuild: undefined,
    failCheck: undefined,
    failRepair: undefined,
    failGrow: undefined,
    tools: {
      openDraft: ({ output }) =>
        Effect.acquireRelease(
          // Like the real draft, the output exists (empty) from the start.
          Effect.as(
            Effect.promise(() => fs.writeFile(output, "")),
            identity<ImageDraft>({
              contents: countingSink(),
              plan: (entries) =>
                Effect.sync(() => {
                  const requiredBytes = fakeRequired(sizesOf(entries))
                  return {
                    requiredBytes,
                    usedInodes: entries.length + 11,
                    misfit: (sizeBytes: number) =>
                      sizeBytes < requiredBytes ? `the fake needs ${requiredBytes} bytes` : undefined,
                    write: (options: WriteImageOptions) =>
                      writeImage({
                        output,
                        sizeBytes: options.sizeBytes,
                        inodes: options.inodes,
                        label: options.label,
                        entries: entries.length
                      })
                  }
                })
            })
          ),
          (_, exit) => (Exit.isFailure(exit) ? Effect.promise(() => fs.rm(output, { force: true })) : Effect.void)
        ),
      build: (options) =>
        Effect.suspend(() => {
          fake.builds.push(options)
          return writeImage({
            output: options.output,
            sizeBytes: options.sizeBytes,
            inodes: options.inodes,
            label: options.label,
            entries: options.tree.entries.length
          })
        }),
      repair: (image) =>
        Effect.suspend(() => {
          fake.repairs.push(image)
          return fake.failRepair !== undefined ? Effect.fail(fake.failRepair) : Effect.void
        }),
      // Like resize2fs on a file: the file ends up exactly that long (sparsely).
      grow: (image, sizeBytes) =>
        Effect.suspend(() => {
          fake.grows.push({ image, sizeBytes })
          if (fake.failGrow !== undefined) return Effect.fail(fake.failGrow)
          return Effect.tryPromise({
            try: () => fs.truncate(image, sizeBytes),
            catch: (error) =>
              new Ext4Error({ tool: "resize2fs", reason: `fake grow failed: ${String(error)}`, stderr: "" })
          })
        }),
      check: (image) =>
        Effect.suspend(() => {
          fake.checks.push(image)
          if (fake.failCheck !== undefined) return Effect.fail(fake.failCheck)
          return Effect.tryPromise({
            try: async () => {
              const handle = await fs.open(image, "r")
              try {
                const head = Buffer.alloc(FAKE_IMAGE_MAGIC.length)
                await handle.read(head, 0, head.length, 0)
                return head.toString() === FAKE_IMAGE_MAGIC
              } finally {
                await handle.close()
              }
            },
            catch: (error) => String(error)
          }).pipe(
            Effect.catchAll((reason) => Effect.succeed(reason)),
            Effect.flatMap((result) =>
              result === true
                ? Effect.void
                : new Ext4Error({
                    tool: "e2fsck",
                    reason: `${image} is not an image built by the fake`,
                    stderr: typeof result === "string" ? result : ""
                  })
            )
          )
        })
    }
  }
  return fake
}
