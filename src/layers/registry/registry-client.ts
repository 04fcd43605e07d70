import type { HttpClient } from "@effect/platform"
import { Context, Effect, Layer } from "effect"
import type { DigestMismatch, PlatformNotFound, RegistryError } from "../../domain/errors.js"
import type { Descriptor, ResolvedImage } from "../../domain/oci.js"
import type { ImageReference, Platform } from "../../domain/reference.js"
import type { OnChunk } from "./blob-stream.js"
import { makeRegistryClient, optionsFromEnv, type RegistryClientOptions } from "./make-registry-client.js"

/** OCI distribution client: resolves a reference to one platform's manifest and streams blobs. */
export interface RegistryClientShape {
  readonly resolve: (
    reference: ImageReference,
    platform: Platform
  ) => Effect.Effect<ResolvedImage, RegistryError | PlatformNotFound | DigestMismatch>
  /**
   * The raw blob bytes (compressed as stored), handed to `onChunk` in order as they arrive (a chunk
   * is the caller's to keep); a dropped connection resumes with a Range request. Digest checking is
   * the caller's job (see BlobCache).
   */
  readonly readBlob: <E>(
    reference: ImageReference,
    descriptor: Descriptor,
    onChunk: OnChunk<E>
  ) => Effect.Effect<void, RegistryError | E>
}

export class RegistryClient extends Context.Tag("banger/RegistryClient")<RegistryClient, RegistryClientShape>() {
  /** Credentials from `$DOCKER_CONFIG/config.json` (or `~/.docker/`), plain HTTP per `BANGER_INSECURE_REGISTRIES`. */
  static readonly layer: Layer.Layer<RegistryClient, never, HttpClient.HttpClient> = Layer.effect(
    RegistryClient,
    Effect.flatMap(optionsFromEnv, makeRegistryClient)
  )

  /** The environment's credentials and insecure registries, with these options on top (the daemon's flags). */
  static readonly layerFromEnv = (
    overrides: RegistryClientOptions
  ): Layer.Layer<RegistryClient, never, HttpClient.HttpClient> =>
    Layer.effect(
      RegistryClient,
      Effect.flatMap(optionsFromEnv, (fromEnv) =>
        makeRegistryClient({
          ...fromEnv,
          ...Object.fromEntries(Object.entries(overrides).filter(([, value]) => value !== undefined))
        })
      )
    )

  /** Explicit options instead of the environment (tests, or a daemon with its own settings). */
  static readonly layerWith = (
    options: RegistryClientOptions
  ): Layer.Layer<RegistryClient, never, HttpClient.HttpClient> =>
    Layer.effect(RegistryClient, makeRegistryClient(options))
}

export type { RegistryClientOptions } from "./make-registry-client.js"
