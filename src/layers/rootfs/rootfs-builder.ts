import { Context, type Effect, type Scope } from "effect"
import type { DigestMismatch, FilesystemError, InvalidLayer, UnsafeLayerEntry } from "../../domain/errors.js"
import type { LayerCompression } from "../../domain/oci.js"
import type { FlatTree } from "../../domain/tree.js"

/** A downloaded layer blob ready to apply. */
export interface LayerFile {
  readonly path: string
  readonly digest: string
  readonly diffId: string
  readonly compression: LayerCompression
}

/** Applies layers, bottom first, into a temp tree under `<state>/tmp`. */
export interface RootfsBuilderShape {
  /** The tree is removed when the scope closes, whatever the outcome. */
  readonly flatten: (
    layers: ReadonlyArray<LayerFile>,
    onLayerApplied?: (index: number) => Effect.Effect<void>
  ) => Effect.Effect<FlatTree, UnsafeLayerEntry | InvalidLayer | DigestMismatch | FilesystemError, Scope.Scope>
}

export class RootfsBuilder extends Context.Tag("banger/RootfsBuilder")<RootfsBuilder, RootfsBuilderShape>() {}
