import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { NodeHttpClient } from "@effect/platform-node"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer } from "effect"
import type { Descriptor } from "../../src/domain/oci.js"
import { BlobCache } from "../../src/layers/blob-cache/blob-cache.js"
import { HASH_AFTER_BYTES } from "../../src/layers/blob-cache/download.js"
import { digestHasher } from "../../src/layers/host/stream-hasher.js"
import { RegistryClient, type RegistryClientOptions } from "../../src/layers/registry/registry-client.js"
import { StatePaths } from "../../src/layers/state/state-paths.js"
import { type BuiltLayer, layerFromTar, sha256 } from "../support/layers.js"
import { imageRef, pushImage, startRegistry, type TestRegistry } from "../support/registry.js"
import { type ProxyOptions, type RegistryProxy, startRegistryProxy } from "../support/registry-proxy.js"

let registry: TestRegistry
let layer: BuiltLayer
let descriptor: Descriptor
/** Big enough to be hashed from its file once downloaded (HASH_AFTER_BYTES), not on the way in. */
let bigLayer: BuiltLayer
let bigDescriptor: Descriptor

beforeAll(async () => {
  registry = await startRegistry()
  // The cache never looks inside: any 3 MiB (many chunks, so progress and resume show) will do.
  layer = layerFromTar(randomBytes(3 * 1024 * 1024), "none")
  descriptor = { mediaType: layer.mediaType, digest: layer.digest, size: layer.blob.length }
  await pushImage(registry, "cache/test", "v1", { layers: [layer] })
  bigLayer = layerFromTar(randomBytes(HASH_AFTER_BYTES + 1024 * 1024), "none")
  bigDescriptor = { mediaType: bigLayer.mediaType, digest: bigLayer.digest, size: bigLayer.blob.length }
  await pushImage(registry, "cache/big", "v1", { layers: [bigLayer] })
})

afterAll(async () => {
  await registry?.stop()
})

const tempRoot = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "banger-blob-cache-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

const proxied = (options: ProxyOptions = {}) =>
  Effect.acquireRelease(
    Effect.promise(() => startRegistryProxy(registry, options)),
    (proxy) => Effect.promise(() => proxy.stop())
  )

const cacheLayer = (root: string, options: RegistryClientOptions = {}) =>
  BlobCache.layer.pipe(
    Layer.provide(
      RegistryClient.layerWith({ dockerConfigPath: "/nonexistent/config.json", baseDelay: "20 millis", ...options })
    ),
    Layer.provide(NodeHttpClient.layerUndici),
    Layer.provide(StatePaths.layer(root))
  )

/** Everything under the cache dir, relative: proves what was (not) left behind. */
const listCache = (root: string) =>
  Effect.promise(async () => {
    const base = path.join(root, "cache", "blobs")
    const entries = await fs.readdir(base, { recursive: true }).catch(() => [] as Array<string>)
    return entries.sort()
  })

const blobFile = (root: string, digest: string) => path.join(root, "cache", "blobs", ...digest.split(":"))

const ensureVia = (proxy: RegistryProxy, onProgress?: (bytes: number) => Effect.Effect<void>) =>
  Effect.flatMap(BlobCache, (cache) => cache.ensure(imageRef(proxy, "cache/test"), descriptor, onProgress))

describe("BlobCache", () => {
  it.live("downloads into <root>/cache/blobs/<alg>/<hex>, then serves hits without the network", () =>
    Effect.gen(function* () {
      const root = yield* tempRoot
      const proxy = yield* proxied()
      const progress: Array<number> = []
      const record = (bytes: number) => Effect.sync(() => void progress.push(bytes))
      const [first, second] = yield* Effect.all([
        ensureVia(proxy, record),
        Effect.suspend(() => {
          const seen = progress.length
          return Effect.map(ensureVia(proxy, record), (file) => ({ file, progressed: progress.length > seen }))
        })
      ]).pipe(Effect.provide(cacheLayer(root)))
      // (Digests, not toEqual: deep-comparing 3 MiB buffers takes vitest tens of seconds.)
      expect(first).toBe(blobFile(root, layer.digest))
      expect(sha256(yield* Effect.promise(() => fs.readFile(first)))).toBe(layer.digest)
      expect(proxy.blobGets()).toBe(1)
      // Several reports, increasing, ending at the full size; none for the cache hit.
      expect(progress.length).toBeGreaterThan(2)
      expect([...progress].sort((a, b) => a - b)).toEqual(progress)
      expect(progress.at(-1)).toBe(layer.blob.length)
      expect(second).toEqual({ file: first, progressed: false })
      expect(yield* listCache(root)).toEqual([".tmp", "sha256", `sha256/${layer.digest.slice(7)}`])

      // A fresh client and cache over the same root: still no request.
      yield* ensureVia(proxy).pipe(Effect.provide(cacheLayer(root)))
      expect(proxy.blobGets()).toBe(1)
    }).pipe(Effect.scoped)
  )

  it.live("refuses corrupt bytes: DigestMismatch, nothing cached, no temp file", () =>
    Effect.gen(function* () {
      const root = yield* tempRoot
      const proxy = yield* proxied({ fault: "corrupt" })
      const exit = yield* Effect.exit(ensureVia(proxy).pipe(Effect.provide(cacheLayer(root))))
      expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag).toBe("DigestMismatch")
      expect(yield* listCache(root)).toEqual([".tmp", "sha256"])
    }).pipe(Effect.scoped)
  )

  it.live("a big blob is hashed from its file by openssl once written: cached when right, refused when corrupt", () =>
    Effect.gen(function* () {
      expect(digestHasher()).toBe("openssl")
      const root = yield* tempRoot
      const ensureBig = (proxy: RegistryProxy) =>
        Effect.flatMap(BlobCache, (cache) => cache.ensure(imageRef(proxy, "cache/big"), bigDescriptor))
      const corrupting = yield* proxied({ fault: "corrupt" })
      const error = yield* Effect.flip(ensureBig(corrupting).pipe(Effect.provide(cacheLayer(root))))
      const corrupt = Buffer.from(bigLayer.blob)
      corrupt[corrupt.length >> 1] = corrupt[corrupt.length >> 1]! ^ 0xff
      expect(error).toMatchObject({ _tag: "DigestMismatch", expected: bigLayer.digest, actual: sha256(corrupt) })
      expect(yield* listCache(root)).toEqual([".tmp", "sha256"])

      const file = yield* ensureBig(yield* proxied()).pipe(Effect.provide(cacheLayer(root)))
      expect(sha256(yield* Effect.promise(() => fs.readFile(file)))).toBe(bigLayer.digest)
    }).pipe(Effect.scoped)
  )

  it.live("refuses a blob longer than its descriptor, and one shorter", () =>
    Effect.gen(function* () {
      const root = yield* tempRoot
      const proxy = yield* proxied()
      const reference = imageRef(proxy, "cache/test")
      const results = yield* Effect.flatMap(BlobCache, (cache) =>
        Effect.all([
          Effect.flip(cache.ensure(reference, { ...descriptor, size: descriptor.size - 1 })),
          Effect.flip(cache.ensure(reference, { ...descriptor, size: descriptor.size + 1 }))
        ])
      ).pipe(Effect.provide(cacheLayer(root)))
      expect(results.map((error) => error._tag)).toEqual(["DigestMismatch", "DigestMismatch"])
      expect(results[0]!.message).toContain("more than the")
      expect(results[1]!.message).toContain(`the registry sent ${descriptor.size} of the ${descriptor.size + 1} bytes`)
      expect(yield* listCache(root)).toEqual([".tmp", "sha256"])
    }).pipe(Effect.scoped)
  )

  it.live("registry dying mid-layer: RegistryError after bounded retries, no temp file", () =>
    Effect.gen(function* () {
      const root = yield* tempRoot
      const proxy = yield* proxied({ fault: "cut", faultAfterBytes: 0 })
      const error = yield* Effect.flip(ensureVia(proxy).pipe(Effect.provide(cacheLayer(root, { attempts: 3 }))))
      expect(error._tag).toBe("RegistryError")
      expect(error.message).toContain("connection lost")
      expect(proxy.blobGets()).toBe(3)
      expect(yield* listCache(root)).toEqual([".tmp", "sha256"])
    }).pipe(Effect.scoped)
  )

  it.live("registry dying mid-layer then recovering: resumes and verifies", () =>
    Effect.gen(function* () {
      const root = yield* tempRoot
      const proxy = yield* proxied({ fault: "cut", faultCount: 2 })
      const file = yield* ensureVia(proxy).pipe(Effect.provide(cacheLayer(root)))
      expect(sha256(yield* Effect.promise(() => fs.readFile(file)))).toBe(layer.digest)
      expect(proxy.blobGets()).toBe(3)
      expect(yield* listCache(root)).toEqual([".tmp", "sha256", `sha256/${layer.digest.slice(7)}`])
    }).pipe(Effect.scoped)
  )

  it.live("interrupted mid-download: the temp file is removed", () =>
    Effect.gen(function* () {
      const root = yield* tempRoot
      // Half the blob, then silence: the download is in flight when we interrupt it.
      const proxy = yield* proxied({ fault: "stall" })
      const started = yield* Deferred.make<void>()
      const fiber = yield* ensureVia(proxy, () => Deferred.succeed(started, undefined).pipe(Effect.asVoid)).pipe(
        Effect.provide(cacheLayer(root)),
        Effect.fork
      )
      yield* Deferred.await(started)
      const tmp = yield* Effect.promise(() => fs.readdir(path.join(root, "cache", "blobs", ".tmp")))
      expect(tmp).toHaveLength(1)
      expect(tmp[0]).toMatch(new RegExp(`^${process.pid}\\.\\d+-blob-`))
      yield* Fiber.interrupt(fiber)
      expect(yield* listCache(root)).toEqual([".tmp", "sha256"])
    }).pipe(Effect.scoped)
  )

  it.live("concurrent ensure of one blob downloads it once", () =>
    Effect.gen(function* () {
      const root = yield* tempRoot
      const proxy = yield* proxied()
      const files = yield* Effect.all(
        Array.from({ length: 4 }, () => ensureVia(proxy)),
        { concurrency: "unbounded" }
      ).pipe(Effect.provide(cacheLayer(root)))
      expect(new Set(files)).toEqual(new Set([blobFile(root, layer.digest)]))
      expect(proxy.blobGets()).toBe(1)
      expect(sha256(yield* Effect.promise(() => fs.readFile(files[0]!)))).toBe(layer.digest)
    }).pipe(Effect.scoped)
  )

  it.live("checking free space never removes a blob, even one renamed into place as it looks", () =>
    Effect.gen(function* () {
      const root = yield* tempRoot
      // Pieces over time, so the checks below are running when the blob is renamed into place.
      const proxy = yield* proxied({ fault: "trickle", trickleParts: 8, trickleIntervalMs: 20 })
      const file = blobFile(root, layer.digest)
      yield* Effect.gen(function* () {
        const cache = yield* BlobCache
        let downloading = true
        // Other pulls of images that share the blob check space while this one downloads it. A
        // check that found nothing and then removed "what it found" deleted the fresh blob.
        const checks = Effect.forEach(
          Array.from({ length: 8 }),
          () =>
            Effect.whileLoop({
              while: () => downloading,
              body: () => cache.checkSpace([descriptor]),
              step: () => undefined
            }),
          { concurrency: "unbounded", discard: true }
        )
        const download = ensureVia(proxy).pipe(Effect.ensuring(Effect.sync(() => (downloading = false))))
        yield* Effect.all([download, checks], { concurrency: "unbounded" })
      }).pipe(Effect.provide(cacheLayer(root)))
      expect(sha256(yield* Effect.promise(() => fs.readFile(file)))).toBe(layer.digest)
      // A stale file is the download's to replace (under the blob's lock), not the check's.
      yield* Effect.promise(() => fs.writeFile(file, "truncated"))
      yield* Effect.flatMap(BlobCache, (cache) => cache.checkSpace([descriptor])).pipe(Effect.provide(cacheLayer(root)))
      expect(yield* Effect.promise(() => fs.readFile(file, "utf8"))).toBe("truncated")
    }).pipe(Effect.scoped)
  )

  it.live("replaces a cached file of the wrong size", () =>
    Effect.gen(function* () {
      const root = yield* tempRoot
      const proxy = yield* proxied()
      const file = blobFile(root, layer.digest)
      yield* Effect.promise(async () => {
        await fs.mkdir(path.dirname(file), { recursive: true })
        await fs.writeFile(file, "truncated")
      })
      yield* ensureVia(proxy).pipe(Effect.provide(cacheLayer(root)))
      expect(proxy.blobGets()).toBe(1)
      expect(sha256(yield* Effect.promise(() => fs.readFile(file)))).toBe(layer.digest)
    }).pipe(Effect.scoped)
  )

  it.live("rejects a digest that is not sha256/sha512 hex before touching disk or network", () =>
    Effect.gen(function* () {
      const root = yield* tempRoot
      const proxy = yield* proxied()
      const error = yield* Effect.flip(
        Effect.flatMap(BlobCache, (cache) =>
          cache.ensure(imageRef(proxy, "cache/test"), { ...descriptor, digest: "sha256:../../../etc/passwd" })
        ).pipe(Effect.provide(cacheLayer(root)))
      )
      expect(error._tag).toBe("DigestMismatch")
      expect(proxy.requests).toHaveLength(0)
      expect(yield* listCache(root)).toEqual([])
    }).pipe(Effect.scoped)
  )
})
