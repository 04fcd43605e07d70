import { Context, type Effect, Layer } from "effect"
import type { DigestMismatch, FilesystemError, RegistryError } from "../../domain/errors.js"
import type { Descriptor } from "../../domain/oci.js"
import type { ImageReference } from "../../domain/reference.js"
import type { RegistryClient } from "../registry/registry-client.js"
import type { StatePaths } from "../state/state-paths.js"
import { makeBlobCache } from "./make-blob-cache.js"

/** Content-addressed blob store: `<state>/cache/blobs/<alg>/<hex>`, partial downloads in `cache/blobs/.tmp/`. */
export interface BlobCacheShape {
  /**
   * The path of the verified blob, downloading it first when absent. Downloads stream to a temp
   * file while hashing and are renamed into place only when digest and size match. `onProgress`
   * gets the bytes received so far (throttled, always ending with the full size) and is never
   * called on a cache hit, so "no progress" means "served from the cache". Concurrent calls for
   * one digest wait for each other instead of downloading twice.
   *
   * `onTempFile` gets the temp file a download writes to as soon as it exists, for a reader that
   * follows it (see GrowingBlob): when `onProgress` reports n bytes, n bytes are in that file. The
   * file is renamed to the returned path on success and removed on failure.
   */
  readonly ensure: (
    reference: ImageReference,
    descriptor: Descriptor,
    onProgress?: (bytesDone: number) => Effect.Effect<void>,
    onTempFile?: (path: string) => Effect.Effect<void>
  ) => Effect.Effect<string, RegistryError | DigestMismatch | FilesystemError>
  /**
   * Fails before any download when the cache's filesystem has less free space than the blobs not
   * yet cached need (their sizes as the manifest declares them), saying both figures.
   */
  readonly checkSpace: (descriptors: ReadonlyArray<Descriptor>) => Effect.Effect<void, FilesystemError>
  /**
   * The DiffID that a pull checked the blob's uncompressed content against, if one did (see
   * `rememberDiffId`); undefined when none is remembered or it cannot be read.
   */
  readonly verifiedDiffId: (digest: string) => Effect.Effect<string | undefined>
  /**
   * Remembers that the cached blob `digest` uncompresses to content whose digest is `diffId`,
   * which the caller has just checked. A blob is only ever cached after its own digest was checked,
   * so its content, and the DiffID of that content, cannot change: a later pull that claims the
   * same DiffID need not hash the uncompressed bytes again.
   */
  readonly rememberDiffId: (digest: string, diffId: string) => Effect.Effect<void, FilesystemError>
}

export class BlobCache extends Context.Tag("banger/BlobCache")<BlobCache, BlobCacheShape>() {
  static readonly layer: Layer.Layer<BlobCache, never, RegistryClient | StatePaths> = Layer.effect(
    BlobCache,
    makeBlobCache
  )
}
