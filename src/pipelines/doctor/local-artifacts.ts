import { Context, Effect, Layer } from "effect"
import type { StoreError } from "../../domain/errors.js"
import { Store } from "../../layers/store/store.js"

/** A kernel or image as recorded locally: what makes a catalog entry count as already there. */
export interface LocalEntry {
  readonly name: string
  readonly ref: string | null
}

/**
 * The kernels and images the state database records, as the default checks read them. Narrower
 * than `Store`, so that a CLI whose database cannot be opened can still say why in those checks.
 */
export class LocalArtifacts extends Context.Tag("banger/doctor/LocalArtifacts")<
  LocalArtifacts,
  {
    readonly kernels: Effect.Effect<ReadonlyArray<LocalEntry>, StoreError>
    readonly images: Effect.Effect<ReadonlyArray<LocalEntry>, StoreError>
  }
>() {
  static readonly fromStore = Layer.effect(
    LocalArtifacts,
    Effect.map(Store, (store) => ({ kernels: store.kernels.list, images: store.images.list }))
  )

  /** No database yet: nothing is local. */
  static readonly empty = Layer.succeed(LocalArtifacts, { kernels: Effect.succeed([]), images: Effect.succeed([]) })

  /** Every read fails with why the database could not be opened. */
  static readonly unreadable = (error: StoreError) =>
    Layer.succeed(LocalArtifacts, { kernels: Effect.fail(error), images: Effect.fail(error) })
}
