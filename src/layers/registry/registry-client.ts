import { Context, type Effect, type Stream } from "effect"
import type { DigestMismatch, PlatformNotFound, RegistryError } from "../../domain/errors.js"
import type { Descriptor, ResolvedImage } from "../../domain/oci.js"
import type { ImageReference, Platform } from "../../domain/reference.js"

/** OCI distribution client: resolves a reference to one platform's manifest and streams blobs. */
export interface RegistryClientShape {
  readonly resolve: (
    reference: ImageReference,
    platform: Platform
  ) => Effect.Effect<ResolvedImage, RegistryError | PlatformNotFound | DigestMismatch>
  /** The raw blob bytes (compressed as stored). Digest checking is the caller's job (see BlobCache). */
  readonly blob: (reference: ImageReference, descriptor: Descriptor) => Stream.Stream<Uint8Array, RegistryError>
}

export class RegistryClient extends Context.Tag("banger/RegistryClient")<RegistryClient, RegistryClientShape>() {}
