import { Context, type Effect } from "effect"
import type { DigestMismatch, FilesystemError, RegistryError } from "../../domain/errors.js"
import type { Descriptor } from "../../domain/oci.js"
import type { ImageReference } from "../../domain/reference.js"

/** Content-addressed blob store under `<state>/cache/blobs/sha256/`. */
export interface BlobCacheShape {
  /**
   * The path of the verified blob, downloading it first when absent. Downloads stream to a temp
   * file while hashing and are renamed into place only when digest and size match.
   */
  readonly ensure: (
    reference: ImageReference,
    descriptor: Descriptor,
    onProgress?: (bytesDone: number) => Effect.Effect<void>
  ) => Effect.Effect<string, RegistryError | DigestMismatch | FilesystemError>
}

export class BlobCache extends Context.Tag("banger/BlobCache")<BlobCache, BlobCacheShape>() {}
