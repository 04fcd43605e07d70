import { type Duration, Effect, Schedule } from "effect"
import { PlatformNotFound, RegistryError } from "../../domain/errors.js"
import type { Descriptor, LayerDescriptor, ResolvedImage } from "../../domain/oci.js"
import { formatPlatform, type ImageReference, type Platform } from "../../domain/reference.js"
import { digestOf, verifyDigest } from "./digest.js"
import { type RegistryTarget, readBody } from "./http.js"
import {
  type ImageManifest,
  isImageConfigType,
  isImageManifestType,
  layerCompression,
  manifestAccept,
  parseConfig,
  parseManifest
} from "./manifest.js"
import { offeredPlatforms, selectPlatform } from "./platform.js"
import { reportRetry } from "./retry-report.js"
import { expectStatus, type Transport } from "./transport.js"

/** The distribution spec suggests registries refuse manifests over 4 MiB; so do we. */
const manifestLimit = 4 * 1024 * 1024
/** Configs carry history and env; tens of KiB is typical, this is generous. */
const configLimit = 16 * 1024 * 1024

const toPlatform = (source: { os: string; architecture: string; variant?: string | undefined }): Platform => ({
  os: source.os,
  architecture: source.architecture,
  ...(source.variant ? { variant: source.variant } : {})
})

const descriptorOf = (source: Descriptor): Descriptor => ({
  mediaType: source.mediaType,
  digest: source.digest,
  size: source.size
})

/** Turns a reference into one platform's manifest, config and layer list, verifying every digest it can. */
export const makeResolver = (
  transport: Transport,
  retry: {
    readonly attempts: number
    readonly baseDelay: Duration.DurationInput
    readonly idleTimeout: Duration.DurationInput
  }
) => {
  const bodyRetry = Schedule.exponential(retry.baseDelay, 2).pipe(
    Schedule.intersect(Schedule.recurs(Math.max(0, retry.attempts - 1)))
  )
  const fail = (target: RegistryTarget, reason: string) => new RegistryError({ reference: target.reference, reason })

  /**
   * GET a small document (manifest, config) whole. The request itself is retried by the transport;
   * a body that breaks off midway is retried here, from the start, as small documents are.
   */
  const fetchBytes = (target: RegistryTarget, url: string, accept: string | undefined, limit: number, what: string) => {
    let attempt = 0
    return Effect.suspend(() => {
      attempt++
      return transport.get(target, url, accept ? { accept } : {})
    }).pipe(
      Effect.flatMap((followed) => expectStatus(target, followed, what)),
      Effect.flatMap((response) =>
        Effect.map(readBody(response, limit, what, target.reference, retry.idleTimeout), (bytes) => ({
          bytes,
          contentType: response.headers["content-type"]
        }))
      ),
      Effect.tapError((error) =>
        error._tag === "Transient" && attempt < retry.attempts
          ? reportRetry({ reason: error.reason, attempt: attempt + 1, of: retry.attempts })
          : Effect.void
      ),
      Effect.retry({ schedule: bodyRetry, while: (error) => error._tag === "Transient" }),
      Effect.catchTag("Transient", (error) =>
        Effect.fail(fail(target, `${error.reason} (gave up after ${retry.attempts} attempts)`))
      )
    )
  }

  const fetchManifest = Effect.fn("registry.fetchManifest")(function* (target: RegistryTarget, tagOrDigest: string) {
    const what = tagOrDigest.includes(":") ? `${target.registry}/${target.repository}@${tagOrDigest}` : target.reference
    const url = `${target.baseUrl}/v2/${target.repository}/manifests/${tagOrDigest}`
    return yield* fetchBytes(target, url, manifestAccept, manifestLimit, what)
  })

  const fetchConfig = Effect.fn("registry.fetchConfig")(function* (target: RegistryTarget, config: Descriptor) {
    const url = `${target.baseUrl}/v2/${target.repository}/blobs/${config.digest}`
    const { bytes } = yield* fetchBytes(target, url, undefined, configLimit, `config blob ${config.digest}`)
    yield* verifyDigest(bytes, config.digest, "image config")
    return bytes
  })

  /** From an index: the wanted platform's manifest, fetched by digest and verified. */
  const fromIndex = Effect.fn("registry.selectPlatform")(function* (
    target: RegistryTarget,
    entries: ReadonlyArray<Descriptor & { readonly platform?: Platform | undefined }>,
    wanted: Platform
  ) {
    const candidates = entries.filter((entry) => isImageManifestType(entry.mediaType))
    const entry = selectPlatform(candidates, wanted)
    if (entry === undefined) {
      return yield* new PlatformNotFound({
        reference: target.reference,
        platform: formatPlatform(wanted),
        available: offeredPlatforms(candidates),
        reason: "the image index has no manifest for this platform"
      })
    }
    const child = yield* fetchManifest(target, entry.digest)
    yield* verifyDigest(child.bytes, entry.digest, `manifest for ${formatPlatform(entry.platform!)}`)
    const parsed = yield* parseManifest(child.bytes, child.contentType, target.reference)
    if (parsed._tag !== "Manifest") {
      return yield* fail(target, `index entry ${entry.digest} is itself an index (nested indexes are not supported)`)
    }
    return { bytes: child.bytes, manifest: parsed.manifest, platform: toPlatform(entry.platform!) }
  })

  const layersOf = (target: RegistryTarget, manifest: ImageManifest, diffIds: ReadonlyArray<string>) =>
    Effect.forEach(manifest.layers, (layer, index) => {
      const compression = layerCompression(layer.mediaType)
      return compression === undefined
        ? Effect.fail(fail(target, `layer ${layer.digest} has unsupported media type ${layer.mediaType}`))
        : Effect.succeed<LayerDescriptor>({ ...descriptorOf(layer), compression, diffId: diffIds[index]! })
    })

  const resolve = Effect.fn("registry.resolve")(function* (
    target: RegistryTarget,
    reference: ImageReference,
    wanted: Platform
  ) {
    const top = yield* fetchManifest(target, reference.digest ?? reference.tag ?? "latest")
    if (reference.digest !== undefined) yield* verifyDigest(top.bytes, reference.digest, "manifest")
    const parsed = yield* parseManifest(top.bytes, top.contentType, target.reference)
    const selected =
      parsed._tag === "Index"
        ? yield* fromIndex(target, parsed.index.manifests, wanted)
        : { bytes: top.bytes, manifest: parsed.manifest, platform: undefined }
    const { manifest } = selected
    if (!isImageConfigType(manifest.config.mediaType)) {
      return yield* fail(target, `not a container image (config media type ${manifest.config.mediaType})`)
    }
    const config = yield* parseConfig(yield* fetchConfig(target, manifest.config), target.reference)
    // A single-platform manifest says what it is only in its config.
    if (selected.platform === undefined && (config.os !== wanted.os || config.architecture !== wanted.architecture)) {
      return yield* new PlatformNotFound({
        reference: target.reference,
        platform: formatPlatform(wanted),
        available: [formatPlatform(toPlatform(config))],
        reason: "the image is single-platform"
      })
    }
    if (config.rootfs.type !== "layers") {
      return yield* fail(target, `unsupported rootfs type "${config.rootfs.type}" in image config`)
    }
    if (manifest.layers.length !== config.rootfs.diff_ids.length) {
      return yield* fail(
        target,
        `manifest lists ${manifest.layers.length} layers but the config has ${config.rootfs.diff_ids.length} diff_ids`
      )
    }
    return {
      manifestDigest: digestOf(selected.bytes),
      platform: selected.platform ?? toPlatform(config),
      config: descriptorOf(manifest.config),
      runtime: {
        entrypoint: config.config?.Entrypoint ?? [],
        cmd: config.config?.Cmd ?? [],
        env: config.config?.Env ?? [],
        workingDir: config.config?.WorkingDir ?? "",
        user: config.config?.User ?? ""
      },
      layers: yield* layersOf(target, manifest, config.rootfs.diff_ids)
    } satisfies ResolvedImage
  })

  return { resolve }
}
