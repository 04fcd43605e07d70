import { Effect } from "effect"
import type { ContentSink } from "../../domain/content.js"
import type { StatePathsShape } from "../state/state-paths.js"
import { applyLayer } from "./apply-layer.js"
import type { LayerFile, RootfsBuilderOptions, RootfsBuilderShape } from "./rootfs-builder.js"
import { acquireTempTree } from "./temp-tree.js"
import { makeRoot, toEntries } from "./tree-model.js"
import { contentSinkFor, diskSink, type TreeSink } from "./tree-sink.js"

/** 64 GiB: far above any real layer, low enough that a decompression bomb stops well short of a full disk. */
export const DEFAULT_MAX_LAYER_BYTES = 64 * 1024 ** 3

export const makeRootfsBuilder = (paths: StatePathsShape, options: RootfsBuilderOptions = {}): RootfsBuilderShape => {
  const limit = options.maxUncompressedLayerBytes ?? DEFAULT_MAX_LAYER_BYTES
  const applyAll = Effect.fn("RootfsBuilder.applyAll")(function* (
    sink: TreeSink,
    layers: ReadonlyArray<LayerFile>,
    onLayerApplied: ((index: number) => Effect.Effect<void>) | undefined
  ) {
    const tree = { sink, root: makeRoot() }
    for (const [index, layer] of layers.entries()) {
      yield* applyLayer(tree, layer, limit).pipe(
        Effect.withSpan("RootfsBuilder.applyLayer", { attributes: { index, digest: layer.digest } })
      )
      if (onLayerApplied) yield* onLayerApplied(index)
    }
    return toEntries(tree.root)
  })
  return {
    flatten: Effect.fn("RootfsBuilder.flatten")(function* (layers, onLayerApplied) {
      const dir = yield* acquireTempTree(paths)
      const entries = yield* applyAll(diskSink(dir), layers, onLayerApplied)
      return { dir, entries }
    }),
    flattenInto: (layers, contents: ContentSink, onLayerApplied) =>
      applyAll(contentSinkFor(contents), layers, onLayerApplied)
  }
}
