import { Context, Effect, Layer, type Scope } from "effect"
import type { ContentSink } from "../../domain/content.js"
import type { FlatEntries } from "../../domain/entry-list.js"
import type {
  DigestMismatch,
  FilesystemError,
  InvalidLayer,
  RegistryError,
  UnsafeLayerEntry
} from "../../domain/errors.js"
import type { LayerCompression } from "../../domain/oci.js"
import type { FlatTree } from "../../domain/tree.js"
import { StatePaths } from "../state/state-paths.js"
import { makeRootfsBuilder } from "./flatten.js"
import type { GrowingBlob } from "./growing-blob.js"

/** A downloaded layer blob ready to apply, or one still downloading (`download`). */
export interface LayerFile {
  /**
   * The verified blob. For a layer still downloading, where it will be: readers take the path from
   * `download.done` instead.
   */
  readonly path: string
  readonly digest: string
  readonly diffId: string
  readonly compression: LayerCompression
  /**
   * Set while the blob is still downloading: `flatten` reads it as it arrives and fails with the
   * download's failure if it fails.
   */
  readonly download?: GrowingBlob | undefined
  /**
   * An earlier pull checked this blob's uncompressed content against `diffId` (the blob cache
   * remembers it): its bytes are not hashed again.
   */
  readonly diffIdVerified?: boolean | undefined
}

type FlattenError = UnsafeLayerEntry | InvalidLayer | DigestMismatch | FilesystemError | RegistryError

/** Applies layers, bottom first: into a temp tree under `<state>/tmp`, or into a content sink. */
export interface RootfsBuilderShape {
  /**
   * The tree is removed when the scope closes, whatever the outcome. `entries` is the authority
   * on metadata; the directory holds contents only (see `FlatTree`). It contains the image's own
   * symlinks, which may point anywhere on the host: never follow a path inside it by joining
   * strings, resolve it through `entries` instead.
   */
  readonly flatten: (
    layers: ReadonlyArray<LayerFile>,
    onLayerApplied?: (index: number) => Effect.Effect<void>
  ) => Effect.Effect<FlatTree, FlattenError, Scope.Scope>
  /**
   * The same application with file contents sent to `contents` (an image draft) and nothing else
   * written anywhere: the entries carry each file's stored `content`. The flatten gives an
   * `EntryList` over its compact model; test doubles may give plain entries.
   */
  readonly flattenInto: (
    layers: ReadonlyArray<LayerFile>,
    contents: ContentSink,
    onLayerApplied?: (index: number) => Effect.Effect<void>
  ) => Effect.Effect<FlatEntries, FlattenError>
}

export interface RootfsBuilderOptions {
  /** Per-layer bound on uncompressed bytes (decompression bombs); default 64 GiB. */
  readonly maxUncompressedLayerBytes?: number | undefined
  /**
   * A full GC, run once a big tree (`LARGE_TREE_NODES` or more) is listed: the application's maps
   * and the tar reader's leftovers are garbage then, and the plan and the metadata write that
   * follow are where a big pull's memory peaks (the daemon passes V8's `gc`).
   */
  readonly collectGarbage?: (() => void) | undefined
}

export class RootfsBuilder extends Context.Tag("banger/RootfsBuilder")<RootfsBuilder, RootfsBuilderShape>() {
  static readonly layerWith = (options: RootfsBuilderOptions = {}): Layer.Layer<RootfsBuilder, never, StatePaths> =>
    Layer.effect(
      RootfsBuilder,
      Effect.map(StatePaths, (paths) => makeRootfsBuilder(paths, options))
    )

  static readonly layer: Layer.Layer<RootfsBuilder, never, StatePaths> = RootfsBuilder.layerWith()
}
