import { Effect } from "effect"
import type { ContentPacking, ContentSink } from "../../domain/content.js"
import { toTreeEntries } from "../../domain/entry-list.js"
import type { StatePathsShape } from "../state/state-paths.js"
import { applyLayer, type TreeState } from "./apply-layer.js"
import type { LayerFile, RootfsBuilderOptions, RootfsBuilderShape } from "./rootfs-builder.js"
import { acquireTempTree } from "./temp-tree.js"
import { listTree } from "./tree-listing.js"
import { TreeModel } from "./tree-model.js"
import { contentSinkFor, diskSink, type TreeSink } from "./tree-sink.js"

/** 64 GiB: far above any real layer, low enough that a decompression bomb stops well short of a full disk. */
export const DEFAULT_MAX_LAYER_BYTES = 64 * 1024 ** 3

/**
 * Where a GC after the listing pays: on a 500k-entry tree it took the daemon's peak from 203-209
 * to 188-192 MiB (below: a few tens of ms for a few MiB).
 */
export const LARGE_TREE_NODES = 100_000

export const makeRootfsBuilder = (paths: StatePathsShape, options: RootfsBuilderOptions = {}): RootfsBuilderShape => {
  const limit = options.maxUncompressedLayerBytes ?? DEFAULT_MAX_LAYER_BYTES
  const applyAll = Effect.fn("RootfsBuilder.applyAll")(function* (
    sinkFor: (model: TreeModel) => TreeSink,
    packing: ContentPacking | undefined,
    layers: ReadonlyArray<LayerFile>,
    onLayerApplied: ((index: number) => Effect.Effect<void>) | undefined
  ) {
    const model = new TreeModel(packing)
    const tree: TreeState = { sink: sinkFor(model), model, layers: 0 }
    for (const [index, layer] of layers.entries()) {
      yield* applyLayer(tree, layer, limit).pipe(
        Effect.withSpan("RootfsBuilder.applyLayer", { attributes: { index, digest: layer.digest } })
      )
      if (onLayerApplied) yield* onLayerApplied(index)
    }
    const list = listTree(model)
    model.seal()
    if (model.nodes >= LARGE_TREE_NODES) options.collectGarbage?.()
    return list
  })
  return {
    flatten: Effect.fn("RootfsBuilder.flatten")(function* (layers, onLayerApplied) {
      const dir = yield* acquireTempTree(paths)
      const list = yield* applyAll((model) => diskSink(model, dir), undefined, layers, onLayerApplied)
      return { dir, entries: toTreeEntries(list) }
    }),
    flattenInto: (layers, contents: ContentSink, onLayerApplied) =>
      applyAll((model) => contentSinkFor(model, contents), contents.packing, layers, onLayerApplied)
  }
}
