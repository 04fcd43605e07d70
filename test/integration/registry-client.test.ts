import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { NodeHttpClient } from "@effect/platform-node"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Layer } from "effect"
import type { Descriptor } from "../../src/domain/oci.js"
import type { ImageReference, Platform } from "../../src/domain/reference.js"
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

/** A whole blob, read through the client's chunk callback. */
const collect = (client: RegistryClient["Type"], reference: ImageReference, descriptor: Descriptor) =>
  Effect.suspend(() => {
    const chunks: Array<Uint8Array> = []
    return client
      .readBlob(reference, descriptor, (chunk) => Effect.sync(() => void chunks.push(chunk)))
      .pipe(Effect.map(() => Buffer.concat(chunks)))
  })

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
        Effect.forEach(resolved.layers, (layer) => collect(client, reference, layer))
      )
      expect(blobs.map((blob) => sha256(blob))).toEqual([gzipLayer.digest, zstdLayer.digest, tarLayer.digest])
    })
  )

  it.live("pulls layers the harness pushed from files (as rootfs-layers.ts writes them)", () =>
    Effect.gen(function* () {
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "banger-layer-file-"))),
        (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
      )
      // Fresh content, so the registry cannot already hold the blob and skip the upload.
      const layer = yield* Effect.promise(() =>
        buildLayer([{ name: "f", type: "file", content: String(Math.random()) }])
      )
      const file = path.join(dir, "layer.tar.gz")
      yield* Effect.promise(() => fs.writeFile(file, layer.blob))
      const fromFile = {
        path: file,
        size: layer.blob.length,
        digest: layer.digest,
        diffId: layer.diffId,
        mediaType: layer.mediaType
      }
      yield* Effect.promise(() => pushImage(plain, "test/from-file", "v1", { layers: [fromFile] }))
      const reference = imageRef(plain, "test/from-file", { tag: "v1" })
      const blob = yield* withClient((client) =>
        Effect.flatMap(client.resolve(reference, amd64), (resolved) => collect(client, reference, resolved.layers[0]!))
      )
      expect(sha256(blob)).toBe(layer.digest)
    }).pipe(Effect.scoped)
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

/** A docker config.json in a temp dir for the length of the scope. */
const dockerConfig = (auths: Parameters<typeof writeDockerConfig>[0]) =>
  Effect.acquireRelease(
    Effect.promise(() => writeDockerConfig(auths)),
    (config) => Effect.promise(() => config.cleanup())
  )

describe("basic auth", () => {
  let registry: TestRegistry
  let image: PushedImage
  beforeAll(async () => {
    registry = await startRegistry({ auth: "basic" })
    image = await pushImage(registry, "private/app", "v1", { layers: [gzipLayer] })
  })
  afterAll(async () => {
    await registry?.stop()
  })

  it.live("pulls with the credentials from the docker config", () =>
    Effect.gen(function* () {
      const config = yield* dockerConfig({ [registry.host]: basicAuthEntry(registry.credentials!) })
      const reference = imageRef(registry, "private/app", { tag: "v1" })
      const blob = yield* withClient(
        (client) =>
          Effect.flatMap(client.resolve(reference, amd64), (resolved) =>
            collect(client, reference, resolved.layers[0]!)
          ),
        { dockerConfigPath: config.path }
      )
      expect(sha256(blob)).toBe(gzipLayer.digest)
      expect(image.digest).toMatch(/^sha256:/)
    }).pipe(Effect.scoped)
  )

  it.live("RegistryClient.layer takes the docker config from DOCKER_CONFIG", () =>
    Effect.gen(function* () {
      const config = yield* dockerConfig({ [registry.host]: basicAuthEntry(registry.credentials!) })
      const resolved = yield* Effect.flatMap(RegistryClient, (client) =>
        client.resolve(imageRef(registry, "private/app", { tag: "v1" }), amd64)
      ).pipe(
        Effect.provide(
          RegistryClient.layer.pipe(
            Layer.provide(NodeHttpClient.layerUndici),
            Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["DOCKER_CONFIG", config.dir]]))))
          )
        )
      )
      expect(resolved.manifestDigest).toBe(image.digest)
    }).pipe(Effect.scoped)
  )

  it.live("accepts username/password fields as well as auth", () =>
    Effect.gen(function* () {
      const config = yield* dockerConfig({
        [`http://${registry.host}/v2/`]: {
          username: registry.credentials!.username,
          password: registry.credentials!.password
        }
      })
      const resolved = yield* withClient(
        (client) => client.resolve(imageRef(registry, "private/app", { tag: "v1" }), amd64),
        { dockerConfigPath: config.path }
      )
      expect(resolved.manifestDigest).toBe(image.digest)
    }).pipe(Effect.scoped)
  )

  it.live("fails clearly with wrong credentials", () =>
    Effect.gen(function* () {
      const config = yield* dockerConfig({ [registry.host]: basicAuthEntry({ username: "banger", password: "wrong" }) })
      const error = failureOf(
        yield* Effect.exit(
          withClient((client) => client.resolve(imageRef(registry, "private/app", { tag: "v1" }), amd64), {
            dockerConfigPath: config.path
          })
        )
      )
      expect(error._tag).toBe("RegistryError")
      expect(error.message).toContain(`unauthorized: ${registry.host} rejected the credentials from ${config.path}`)
    }).pipe(Effect.scoped)
  )

  it.live("fails clearly without credentials", () =>
    Effect.gen(function* () {
      const error = failureOf(
        yield* Effect.exit(
          withClient((client) => client.resolve(imageRef(registry, "private/app", { tag: "v1" }), amd64))
        )
      )
      expect(error._tag).toBe("RegistryError")
      expect(error.message).toContain("unauthorized:")
      expect(error.message).toContain("requires a username and password")
    })
  )

  it.live("follows a blob redirect to another host without forwarding Authorization", () =>
    Effect.gen(function* () {
      const proxy = yield* Effect.acquireRelease(
        Effect.promise(() => startRegistryProxy(registry, { fault: "redirect" })),
        (proxy) => Effect.promise(() => proxy.stop())
      )
      // References name the proxy, so that is the host the credentials are filed under.
      const proxyConfig = yield* dockerConfig({ [proxy.host]: basicAuthEntry(registry.credentials!) })
      const reference = imageRef(proxy, "private/app", { tag: "v1" })
      const blob = yield* withClient(
        (client) =>
          Effect.flatMap(client.resolve(reference, amd64), (resolved) =>
            collect(client, reference, resolved.layers[0]!)
          ),
        { dockerConfigPath: proxyConfig.path }
      )
      expect(sha256(blob)).toBe(gzipLayer.digest)
      const redirected = proxy.requests.filter((request) => request.server === "proxy" && request.faulted)
      const served = proxy.requests.filter((request) => request.server === "storage")
      // Config blob and layer blob both went through the redirect.
      expect(redirected.length).toBe(2)
      expect(redirected.every((request) => request.authorization?.startsWith("Basic "))).toBe(true)
      expect(served.length).toBe(2)
      expect(served.every((request) => request.authorization === undefined)).toBe(true)
    }).pipe(Effect.scoped)
  )
})

describe("token auth", () => {
  let registry: TestRegistry
  let image: PushedImage
  beforeAll(async () => {
    registry = await startRegistry({ auth: "token", refreshTokens: ["refresh-me"] })
    image = await pushImage(registry, "private/tokened", "v1", { layers: [gzipLayer, tarLayer] })
  })
  afterAll(async () => {
    await registry?.stop()
  })

  const reference = () => imageRef(registry, "private/tokened", { tag: "v1" })
  const pullAll = (client: RegistryClient["Type"]) =>
    Effect.flatMap(client.resolve(reference(), amd64), (resolved) =>
      Effect.forEach(resolved.layers, (layer) => Effect.map(collect(client, reference(), layer), sha256))
    )

  it.live("gets a bearer token with basic credentials and reuses it for the session", () =>
    Effect.gen(function* () {
      const config = yield* dockerConfig({ [registry.host]: basicAuthEntry(registry.credentials!) })
      const before = registry.tokenServer!.requests.length
      const digests = yield* withClient(pullAll, { dockerConfigPath: config.path })
      expect(digests).toEqual([gzipLayer.digest, tarLayer.digest])
      const asked = registry.tokenServer!.requests.slice(before)
      // Manifest, config and two layers: one token.
      expect(asked).toEqual([
        { method: "GET", grantType: undefined, user: "banger", scopes: ["repository:private/tokened:pull"] }
      ])
      expect(image.digest).toMatch(/^sha256:/)
    }).pipe(Effect.scoped)
  )

  it.live("exchanges an identity token (OAuth2 refresh token) at the realm", () =>
    Effect.gen(function* () {
      const config = yield* dockerConfig({ [registry.host]: { auth: "", identitytoken: "refresh-me" } })
      const before = registry.tokenServer!.requests.length
      const digests = yield* withClient(pullAll, { dockerConfigPath: config.path })
      expect(digests).toEqual([gzipLayer.digest, tarLayer.digest])
      expect(registry.tokenServer!.requests.slice(before)).toEqual([
        { method: "POST", grantType: "refresh_token", user: "banger", scopes: ["repository:private/tokened:pull"] }
      ])
    }).pipe(Effect.scoped)
  )

  it.live("sends a registry token as the bearer directly", () =>
    Effect.gen(function* () {
      const realm = new URL(registry.tokenServer!.realm)
      realm.searchParams.set("service", "banger-test-registry")
      realm.searchParams.set("scope", "repository:private/tokened:pull")
      const token = yield* Effect.promise(async () => {
        const response = await fetch(realm, {
          headers: { authorization: `Basic ${basicAuthEntry(registry.credentials!).auth}` }
        })
        return ((await response.json()) as { token: string }).token
      })
      const config = yield* dockerConfig({ [registry.host]: { registrytoken: token } })
      const before = registry.tokenServer!.requests.length
      const digests = yield* withClient(pullAll, { dockerConfigPath: config.path })
      expect(digests).toEqual([gzipLayer.digest, tarLayer.digest])
      expect(registry.tokenServer!.requests.length).toBe(before)
    }).pipe(Effect.scoped)
  )

  it.live("fails clearly when the token server rejects the credentials", () =>
    Effect.gen(function* () {
      const config = yield* dockerConfig({ [registry.host]: basicAuthEntry({ username: "banger", password: "nope" }) })
      const error = failureOf(
        yield* Effect.exit(
          withClient((client) => client.resolve(reference(), amd64), { dockerConfigPath: config.path })
        )
      )
      expect(error._tag).toBe("RegistryError")
      expect(error.message).toContain("unauthorized: token server")
      expect(error.message).toContain("rejected the credentials")
    }).pipe(Effect.scoped)
  )

  it.live("fails clearly when an anonymous token is not enough", () =>
    Effect.gen(function* () {
      const before = registry.tokenServer!.requests.length
      const error = failureOf(yield* Effect.exit(withClient((client) => client.resolve(reference(), amd64))))
      expect(error._tag).toBe("RegistryError")
      expect(error.message).toContain("unauthorized:")
      expect(error.message).toContain("has no credentials for it")
      // One anonymous token, one retry with it, then a clear failure: no loop.
      expect(registry.tokenServer!.requests.length - before).toBe(1)
    })
  )
})

describe("unreliable connections", () => {
  const zstdDescriptor = () => ({
    mediaType: zstdLayer.mediaType,
    digest: zstdLayer.digest,
    size: zstdLayer.blob.length
  })
  const proxied = (options: Parameters<typeof startRegistryProxy>[1] = {}) =>
    Effect.acquireRelease(
      Effect.promise(() => startRegistryProxy(plain, options)),
      (proxy) => Effect.promise(() => proxy.stop())
    )

  it.live("resumes a blob with a Range request when the connection drops mid-body", () =>
    Effect.gen(function* () {
      const proxy = yield* proxied({ fault: "cut", faultCount: 2 })
      const blob = yield* withClient((client) => collect(client, imageRef(proxy, "test/oci"), zstdDescriptor()))
      expect(sha256(blob)).toBe(zstdLayer.digest)
      const gets = proxy.requests.filter((request) => request.server === "proxy")
      expect(gets.map((request) => request.faulted)).toEqual([true, true, false])
      expect(gets[0]!.range).toBeUndefined()
      expect(gets[1]!.range).toMatch(/^bytes=\d+-$/)
      expect(Number(gets[2]!.range!.slice(6, -1))).toBeGreaterThan(Number(gets[1]!.range!.slice(6, -1)))
    }).pipe(Effect.scoped)
  )

  it.live("gives up after bounded reconnects when the registry keeps dying mid-layer", () =>
    Effect.gen(function* () {
      // Every GET dies before sending a byte of body: no progress, so the attempt budget applies.
      const proxy = yield* proxied({ fault: "cut", faultAfterBytes: 0 })
      const error = failureOf(
        yield* Effect.exit(
          withClient((client) => collect(client, imageRef(proxy, "test/oci"), zstdDescriptor()), { attempts: 3 })
        )
      )
      expect(error._tag).toBe("RegistryError")
      expect(error.message).toContain(`connection lost after 0 of ${zstdLayer.blob.length} bytes`)
      expect(proxy.blobGets()).toBe(3)
    }).pipe(Effect.scoped)
  )

  it.live("retries a small blob whose body breaks off, from the start", () =>
    Effect.gen(function* () {
      // The first blob GET of a resolve is the config.
      const proxy = yield* proxied({ fault: "cut", faultCount: 1 })
      const resolved = yield* withClient((client) => client.resolve(imageRef(proxy, "test/oci", { tag: "v1" }), amd64))
      expect(resolved.manifestDigest).toBe(ociImage.digest)
      const gets = proxy.requests.filter((request) => request.server === "proxy" && request.path.includes("/blobs/"))
      expect(gets.map((request) => [request.faulted, request.range])).toEqual([
        [true, undefined],
        [false, undefined]
      ])
    }).pipe(Effect.scoped)
  )

  it.live("retries 5xx with backoff, and gives up after the attempt budget", () =>
    Effect.gen(function* () {
      const flaky = yield* proxied({ fault: "unavailable", faultCount: 2 })
      const blob = yield* withClient((client) => collect(client, imageRef(flaky, "test/oci"), zstdDescriptor()))
      expect(sha256(blob)).toBe(zstdLayer.digest)
      expect(flaky.blobGets()).toBe(3)

      const down = yield* proxied({ fault: "unavailable" })
      const error = failureOf(
        yield* Effect.exit(
          withClient((client) => collect(client, imageRef(down, "test/oci"), zstdDescriptor()), { attempts: 3 })
        )
      )
      expect(error.message).toContain(`${down.host} answered HTTP 503 (UNAVAILABLE: try again later)`)
      expect(error.message).toContain("gave up after 3 attempts")
      expect(down.blobGets()).toBe(3)
    }).pipe(Effect.scoped)
  )

  it.live("does not retry a 404", () =>
    Effect.gen(function* () {
      const proxy = yield* proxied()
      const missing = { ...zstdDescriptor(), digest: sha256(Buffer.from("not pushed")) }
      const error = failureOf(
        yield* Effect.exit(withClient((client) => collect(client, imageRef(proxy, "test/oci"), missing)))
      )
      expect(error.message).toContain(`not found: blob ${missing.digest}`)
      expect(proxy.blobGets()).toBe(1)
    }).pipe(Effect.scoped)
  )

  it.live("a body that keeps coming is not idle, however long it takes, nor is the time spent handling it", () =>
    Effect.gen(function* () {
      // Eight pieces 100 ms apart (~0.7 s in all) under a 300 ms idle timeout.
      const proxy = yield* proxied({ fault: "trickle" })
      const blob = yield* withClient((client) => collect(client, imageRef(proxy, "test/oci"), zstdDescriptor()), {
        idleTimeout: "300 millis",
        requestTimeout: "30 seconds"
      })
      expect(sha256(blob)).toBe(zstdLayer.digest)
      // Each chunk handled for longer than the idle timeout.
      const slow = yield* withClient(
        (client) =>
          Effect.suspend(() => {
            const chunks: Array<Uint8Array> = []
            return client
              .readBlob(imageRef(proxy, "test/oci"), zstdDescriptor(), (chunk) =>
                Effect.as(Effect.sleep("400 millis"), void chunks.push(chunk))
              )
              .pipe(Effect.map(() => Buffer.concat(chunks)))
          }),
        { idleTimeout: "300 millis", requestTimeout: "30 seconds" }
      )
      expect(sha256(slow)).toBe(zstdLayer.digest)
      expect(proxy.blobGets()).toBe(2)
    }).pipe(Effect.scoped)
  )

  it.live("treats a stalled body as a dropped connection", () =>
    Effect.gen(function* () {
      const proxy = yield* proxied({ fault: "stall", faultCount: 1 })
      const blob = yield* withClient((client) => collect(client, imageRef(proxy, "test/oci"), zstdDescriptor()), {
        idleTimeout: "300 millis",
        requestTimeout: "30 seconds"
      })
      expect(sha256(blob)).toBe(zstdLayer.digest)
      expect(proxy.blobGets()).toBe(2)
    }).pipe(Effect.scoped)
  )
})
