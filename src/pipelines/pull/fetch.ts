import { Effect } from "effect"
import type { ResolvedImage } from "../../domain/oci.js"
import type { ImageReference, Platform } from "../../domain/reference.js"
import { BlobCache } from "../../layers/blob-cache/blob-cache.js"
import { RegistryClient } from "../../layers/registry/registry-client.js"
import type { LayerFile } from "../../layers/rootfs/rootfs-builder.js"
import { PullProgress, reportStage } from "./progress.js"

/** Layers download side by side, but a few at a time: registries throttle, and disks prefer it. */
const LAYER_CONCURRENCY = 3

export interface FetchedImage {
  readonly resolved: ResolvedImage
  readonly layers: ReadonlyArray<LayerFile>
}

export const fetchImage = Effect.fn("fetchImage")(function* (reference: ImageReference, platform: Platform) {
  const registry = yield* RegistryClient
  const cache = yield* BlobCache
  const progress = yield* PullProgress

  yield* reportStage("resolve")
  const resolved = yield* registry.resolve(reference, platform)

  yield* reportStage("fetch")
  const count = resolved.layers.length
  const layers = yield* Effect.forEach(
    resolved.layers,
    (layer, index) =>
      Effect.gen(function* () {
        let downloaded = false
        const report = (bytesDone: number, cached: boolean) =>
          progress.report({
            _tag: "LayerProgress",
            index,
            count,
            digest: layer.digest,
            bytesDone,
            bytesTotal: layer.size,
            cached
          })
        const file = yield* cache.ensure(reference, layer, (bytesDone) => {
          downloaded = true
          return report(bytesDone, false)
        })
        yield* report(layer.size, !downloaded)
        return { path: file, digest: layer.digest, diffId: layer.diffId, compression: layer.compression } as LayerFile
      }),
    { concurrency: LAYER_CONCURRENCY }
  )
  return { resolved, layers } satisfies FetchedImage
})
