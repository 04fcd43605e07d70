import { NodeHttpClient } from "@effect/platform-node"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Layer, Stream } from "effect"
import type { Platform } from "../../src/domain/reference.js"
import { RegistryClient, type RegistryClientOptions } from "../../src/layers/registry/registry-client.js"
import { type BuiltLayer, buildLayer, sha256 } from "../support/layers.js"
import {
  basicAuthEntry,
  imageRef,
  type PushedImage,
  pushImage,
  pushIndex,
  startRegistry,
  type TestRegistry,
  writeDockerConfig
} from "../support/registry.js"
import { startRegistryProxy } from "../support/registry-proxy.js"

const amd64: Platform = { os: "linux", architecture: "amd64" }
const arm64: Platform = { os: "linux", architecture: "arm64" }

/** Fast retries and no ambient docker config: every test says what credentials it means. */
const clientLayer = (options: RegistryClientOptions = {}) =>
  RegistryClient.layerWith({
    dockerConfigPath: "/nonexistent/banger-test/config.json",
    baseDelay: "20 millis",
    ...options
  }).pipe(Layer.provide(NodeHttpClient.layerUndici))

const withClient = <A, E>(
  use: (client: RegistryClient["Type"]) => Effect.Effect<A, E>,
  options?: RegistryClientOptions
) => Effect.flatMap(RegistryClient, use).pipe(Effect.provide(clientLayer(options)))

const collect = (stream: Stream.Stream<Uint8Array, unknown>) =>
  Stream.runCollect(stream).pipe(Effect.map((chunks) => Buffer.concat(Chunk.toReadonlyArray(chunks))))

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure, got success")
  const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  if (failure === undefined) throw new Error(`expected a typed failure, got ${exit.cause._tag}`)
  return failure
}

let plain: TestRegistry
let gzipLayer: BuiltLayer
let zstdLayer: BuiltLayer
let tarLayer: BuiltLayer
let ociImage: PushedImage

beforeAll(async () => {
  plain = await startRegistry()
  gzipLayer = await buildLayer([{ name: "etc/hostname", type: "file", content: "gzip\n" }], "gzip")
  zstdLayer = await buildLayer([{ name: "etc/motd", type: "file", content: "zstd\n".repeat(1000) }], "zstd")
  tarLayer = await buildLayer([{ name: "bin", type: "directory" }], "none")
  ociImage = await pushImage(plain, "test/oci", "v1", { layers: [gzipLayer, zstdLayer, tarLayer] })
})

afterAll(async () => {
  await plain?.stop()
})

describe("manifests and layers", () => {
  it.live("resolves an OCI manifest with gzip, zstd and uncompressed layers", () =>
    Effect.gen(function* () {
      const resolved = yield* withClient((client) => client.resolve(imageRef(plain, "test/oci", { tag: "v1" }), amd64))
      expect(resolved.manifestDigest).toBe(ociImage.digest)
      expect(resolved.platform).toEqual(amd64)
      expect(resolved.config).toEqual({
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: ociImage.config.digest,
        size: ociImage.config.size
      })
      expect(resolved.layers).toEqual([
        {
          mediaType: gzipLayer.mediaType,
          digest: gzipLayer.digest,
          size: gzipLayer.blob.length,
          compression: "gzip",
          diffId: gzipLayer.diffId
        },
        {
          mediaType: zstdLayer.mediaType,
          digest: zstdLayer.digest,
          size: zstdLayer.blob.length,
          compression: "zstd",
          diffId: zstdLayer.diffId
        },
        {
          mediaType: tarLayer.mediaType,
          digest: tarLayer.digest,
          size: tarLayer.blob.length,
          compression: "none",
          diffId: tarLayer.diffId
        }
      ])
    })
  )

  it.live("streams each blob byte for byte", () =>
    Effect.gen(function* () {
      const reference = imageRef(plain, "test/oci", { tag: "v1" })
      const resolved = yield* withClient((client) => client.resolve(reference, amd64))
      const blobs = yield* withClient((client) =>
        Effect.forEach(resolved.layers, (layer) => collect(client.blob(reference, layer)))
      )
      expect(blobs.map((blob) => sha256(blob))).toEqual([gzipLayer.digest, zstdLayer.digest, tarLayer.digest])
    })
  )

  it.live("resolves a Docker schema2 manifest", () =>
    Effect.gen(function* () {
      const image = yield* Effect.promise(() =>
        pushImage(plain, "test/docker", "v1", { layers: [gzipLayer], manifestMediaType: "docker" })
      )
      const resolved = yield* withClient((client) =>
        client.resolve(imageRef(plain, "test/docker", { tag: "v1" }), amd64)
      )
      expect(resolved.manifestDigest).toBe(image.digest)
      expect(resolved.config.mediaType).toBe("application/vnd.docker.container.image.v1+json")
      expect(resolved.layers).toEqual([
        {
          mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip",
          digest: gzipLayer.digest,
          size: gzipLayer.blob.length,
          compression: "gzip",
          diffId: gzipLayer.diffId
        }
      ])
    })
  )

  it.live("refuses layer media types it cannot unpack, naming them", () =>
    Effect.gen(function* () {
      const encrypted = { ...gzipLayer, mediaType: "application/vnd.oci.image.layer.v1.tar+gzip+encrypted" }
      yield* Effect.promise(() => pushImage(plain, "test/encrypted", "v1", { layers: [encrypted] }))
      const error = failureOf(
        yield* Effect.exit(
          withClient((client) => client.resolve(imageRef(plain, "test/encrypted", { tag: "v1" }), amd64))
        )
      )
      expect(error._tag).toBe("RegistryError")
      expect(error.message).toContain("application/vnd.oci.image.layer.v1.tar+gzip+encrypted")
    })
  )

  it.live("fails when the config's diff_ids do not match the layer count", () =>
    Effect.gen(function* () {
      yield* Effect.promise(() =>
        pushImage(plain, "test/diffids", "v1", {
          layers: [gzipLayer, tarLayer],
          config: { rootfs: { type: "layers", diff_ids: [gzipLayer.diffId] } }
        })
      )
      const error = failureOf(
        yield* Effect.exit(
          withClient((client) => client.resolve(imageRef(plain, "test/diffids", { tag: "v1" }), amd64))
        )
      )
      expect(error._tag).toBe("RegistryError")
      expect(error.message).toContain("2 layers but the config has 1 diff_ids")
    })
  )

  it.live("reports a missing tag as not found", () =>
    Effect.gen(function* () {
      const reference = imageRef(plain, "test/oci", { tag: "nope" })
      const error = failureOf(yield* Effect.exit(withClient((client) => client.resolve(reference, amd64))))
      expect(error._tag).toBe("RegistryError")
      expect(error.message).toContain(`not found: ${reference.normalized}`)
    })
  )

  it.live("names the host when the connection is refused, after bounded retries", () =>
    Effect.gen(function* () {
      // Stop a registry of our own so its port is known to be closed.
      const gone = yield* Effect.promise(() => startRegistry())
      yield* Effect.promise(() => gone.stop())
      const error = failureOf(
        yield* Effect.exit(withClient((client) => client.resolve(imageRef(gone, "test/oci"), amd64), { attempts: 3 }))
      )
      expect(error._tag).toBe("RegistryError")
      expect(error.message).toContain(`connection refused by ${gone.host}`)
      expect(error.message).toContain("after 3 attempts")
    })
  )
})

describe("platforms", () => {
  it.live("picks the wanted platform from an OCI index and lists offers when absent", () =>
    Effect.gen(function* () {
      const [x86, arm] = yield* Effect.promise(() =>
        Promise.all([
          pushImage(plain, "test/multi", undefined, { layers: [gzipLayer], platform: amd64 }),
          pushImage(plain, "test/multi", undefined, {
            layers: [tarLayer],
            platform: { ...arm64, variant: "v8" }
          })
        ])
      )
      // Buildx attaches attestations as unknown/unknown entries: never a candidate, never offered.
      const attestation = yield* Effect.promise(() =>
        pushImage(plain, "test/multi", undefined, { layers: [], platform: { os: "unknown", architecture: "unknown" } })
      )
      const index = yield* Effect.promise(() =>
        pushIndex(plain, "test/multi", "v1", [
          { platform: amd64, manifestDigest: x86.digest, size: x86.size },
          { platform: { ...arm64, variant: "v8" }, manifestDigest: arm.digest, size: arm.size },
          {
            platform: { os: "unknown", architecture: "unknown" },
            manifestDigest: attestation.digest,
            size: attestation.size
          }
        ])
      )
      const reference = imageRef(plain, "test/multi", { tag: "v1" })
      const [forAmd, forArm, forArmV8] = yield* withClient((client) =>
        Effect.all([
          client.resolve(reference, amd64),
          client.resolve(reference, arm64),
          client.resolve(reference, { ...arm64, variant: "v8" })
        ])
      )
      expect(forAmd.manifestDigest).toBe(x86.digest)
      expect(forAmd.layers.map((layer) => layer.digest)).toEqual([gzipLayer.digest])
      expect(forArm.manifestDigest).toBe(arm.digest)
      expect(forArm.platform).toEqual({ ...arm64, variant: "v8" })
      expect(forArmV8.manifestDigest).toBe(arm.digest)

      const error = failureOf(
        yield* Effect.exit(withClient((client) => client.resolve(reference, { os: "linux", architecture: "riscv64" })))
      )
      expect(error._tag).toBe("PlatformNotFound")
      if (error._tag !== "PlatformNotFound") return
      expect(error.platform).toBe("linux/riscv64")
      expect(error.available).toEqual(["linux/amd64", "linux/arm64/v8"])

      // Pinned to the index digest: verified, then the platform is picked as before.
      const pinned = yield* withClient((client) =>
        client.resolve(imageRef(plain, "test/multi", { digest: index.digest }), arm64)
      )
      expect(pinned.manifestDigest).toBe(arm.digest)
    })
  )

  it.live("picks from a Docker manifest list, matching arm variants", () =>
    Effect.gen(function* () {
      const v7 = yield* Effect.promise(() =>
        pushImage(plain, "test/list", undefined, {
          layers: [gzipLayer],
          platform: { os: "linux", architecture: "arm", variant: "v7" },
          manifestMediaType: "docker"
        })
      )
      const v6 = yield* Effect.promise(() =>
        pushImage(plain, "test/list", undefined, {
          layers: [tarLayer],
          platform: { os: "linux", architecture: "arm", variant: "v6" },
          manifestMediaType: "docker"
        })
      )
      yield* Effect.promise(() =>
        pushIndex(
          plain,
          "test/list",
          "v1",
          [
            { platform: { os: "linux", architecture: "arm", variant: "v6" }, manifestDigest: v6.digest, size: v6.size },
            { platform: { os: "linux", architecture: "arm", variant: "v7" }, manifestDigest: v7.digest, size: v7.size }
          ],
          "docker"
        )
      )
      const reference = imageRef(plain, "test/list", { tag: "v1" })
      const resolved = yield* withClient((client) =>
        client.resolve(reference, { os: "linux", architecture: "arm", variant: "v7" })
      )
      expect(resolved.manifestDigest).toBe(v7.digest)
      expect(resolved.platform).toEqual({ os: "linux", architecture: "arm", variant: "v7" })
      const error = failureOf(
        yield* Effect.exit(
          withClient((client) => client.resolve(reference, { os: "linux", architecture: "arm", variant: "v5" }))
        )
      )
      expect(error._tag).toBe("PlatformNotFound")
      expect(error.message).toContain("linux/arm/v6, linux/arm/v7")
    })
  )

  it.live("checks a single-platform image's config against the wanted platform", () =>
    Effect.gen(function* () {
      const error = failureOf(
        yield* Effect.exit(withClient((client) => client.resolve(imageRef(plain, "test/oci", { tag: "v1" }), arm64)))
      )
      expect(error._tag).toBe("PlatformNotFound")
      if (error._tag !== "PlatformNotFound") return
      expect(error.available).toEqual(["linux/amd64"])
    })
  )
})

describe("digests", () => {
  it.live("fetches a pinned manifest by digest", () =>
    Effect.gen(function* () {
      const resolved = yield* withClient((client) =>
        client.resolve(imageRef(plain, "test/oci", { tag: "v1", digest: ociImage.digest }), amd64)
      )
      expect(resolved.manifestDigest).toBe(ociImage.digest)
    })
  )

  it.live("rejects a manifest whose bytes do not match the pinned digest", () =>
    Effect.gen(function* () {
      const other = yield* Effect.promise(() => pushImage(plain, "test/oci", "other", { layers: [tarLayer] }))
      // A lying mirror: asked for ociImage's digest, it serves another manifest.
      const proxy = yield* Effect.acquireRelease(
        Effect.promise(() =>
          startRegistryProxy(plain, {
            replaceManifest: (reference) => (reference === ociImage.digest ? other.bytes : undefined)
          })
        ),
        (proxy) => Effect.promise(() => proxy.stop())
      )
      const error = failureOf(
        yield* Effect.exit(
          withClient((client) => client.resolve(imageRef(proxy, "test/oci", { digest: ociImage.digest }), amd64))
        )
      )
      expect(error._tag).toBe("DigestMismatch")
      if (error._tag !== "DigestMismatch") return
      expect(error.expected).toBe(ociImage.digest)
      expect(error.actual).toBe(other.digest)
    }).pipe(Effect.scoped)
  )

  it.live("rejects a config blob that does not match its digest", () =>
    Effect.gen(function* () {
      const proxy = yield* Effect.acquireRelease(
        Effect.promise(() => startRegistryProxy(plain, { fault: "corrupt" })),
        (proxy) => Effect.promise(() => proxy.stop())
      )
      const error = failureOf(
        yield* Effect.exit(withClient((client) => client.resolve(imageRef(proxy, "test/oci", { tag: "v1" }), amd64)))
      )
      expect(error._tag).toBe("DigestMismatch")
      if (error._tag !== "DigestMismatch") return
      expect(error.expected).toBe(ociImage.config.digest)
    }).pipe(Effect.scoped)
  )
})
