import { Effect, Fiber } from "effect"
import type { DigestMismatch, FilesystemError, RegistryError } from "../../domain/errors.js"
import type { ResolvedImage } from "../../domain/oci.js"
import type { ImageReference, Platform } from "../../domain/reference.js"
import { BlobCache } from "../../layers/blob-cache/blob-cache.js"
import { RegistryClient } from "../../layers/registry/registry-client.js"
import { retryReporter } from "../../layers/registry/retry-report.js"
import { GrowingBlob } from "../../layers/rootfs/growing-blob.js"
import type { LayerFile } from "../../layers/rootfs/rootfs-builder.js"
import { StatePaths } from "../../layers/state/state-paths.js"
import { PullProgress, reportStage } from "./progress.js"

/** Layers download side by side, but a few at a time: registries throttle, and disks prefer it. */
const LAYER_CONCURRENCY = 3

export interface FetchedImage {
  readonly resolved: ResolvedImage
  /** Bottom first; each one is read as it downloads (see GrowingBlob). */
  readonly layers: ReadonlyArray<LayerFile>
  /**
   * Every download, verified and in the cache; fails with the first download's failure as soon
   * as it happens (the rest are interrupted), so racing the work that reads the layers against it
   * ends that work at once.
   */
  readonly downloads: Effect.Effect<void, RegistryError | DigestMismatch | FilesystemError>
}

/**
 * Resolves the image and starts its downloads in the caller's scope, returning at once: the layers
 * can be flattened while they arrive.
 */
export const fetchImage = Effect.fn("fetchImage")(function* (reference: ImageReference, platform: Platform) {
  const registry = yield* RegistryClient
  const cache = yield* BlobCache
  const progress = yield* PullProgress
  const paths = yield* StatePaths

  /** Retries deep in the registry client, reported as this pull's progress under `what`. */
  const retriesAs = (what: string) =>
    Effect.locally(retryReporter, (notice) => progress.report({ _tag: "Retrying", what, ...notice }))

  yield* reportStage("resolve")
  const resolved = yield* registry.resolve(reference, platform).pipe(retriesAs("resolve"))

  yield* cache.checkSpace(resolved.layers)

  yield* reportStage("fetch")
  const count = resolved.layers.length
  const blobs = resolved.layers.map((layer) => new GrowingBlob(layer.size))
  const fiber = yield* Effect.forEach(
    resolved.layers,
    (layer, index) =>
      Effect.gen(function* () {
        const blob = blobs[index]!
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
        const file = yield* cache.ensure(
          reference,
          layer,
          (bytesDone) => {
            downloaded = true
            return Effect.zipRight(blob.progress(bytesDone), report(bytesDone, false))
          },
          blob.started
        )
        yield* report(layer.size, !downloaded)
        return file
      }).pipe(
        retriesAs(`layer ${index + 1}/${count}`),
        Effect.onExit((exit) => blobs[index]!.finish(exit))
      ),
    { concurrency: LAYER_CONCURRENCY, discard: true }
  ).pipe(Effect.forkScoped)
  const layers = yield* Effect.forEach(
    resolved.layers,
    (layer, index): Effect.Effect<LayerFile> =>
      Effect.map(cache.verifiedDiffId(layer.digest), (verified) => ({
        path: paths.blobPath(layer.digest),
        digest: layer.digest,
        diffId: layer.diffId,
        compression: layer.compression,
        download: blobs[index],
        diffIdVerified: verified === layer.diffId
      }))
  )
  return { resolved, layers, downloads: Fiber.join(fiber) } satisfies FetchedImage
})

/**
 * Once every layer was applied (each one's DiffID checked) and every download verified: the blob
 * cache remembers each layer's DiffID, so that later pulls of these blobs skip hashing their
 * uncompressed bytes. Only an optimisation: a failure to remember is logged, not the pull's.
 */
export const rememberDiffIds = (layers: ReadonlyArray<LayerFile>) =>
  Effect.flatMap(BlobCache, (cache) =>
    Effect.forEach(
      layers.filter((layer) => layer.diffIdVerified !== true),
      (layer) =>
        cache
          .rememberDiffId(layer.digest, layer.diffId)
          .pipe(Effect.catchAll((error) => Effect.logWarning(`could not remember a layer's DiffID: ${error.reason}`))),
      { discard: true }
    )
  )
