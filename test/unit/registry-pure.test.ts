import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { digestOf, parseDigest, verifyDigest } from "../../src/layers/registry/digest.js"
import {
  allowsPlainHttp,
  apiHost,
  parseInsecureRegistries,
  registryBaseUrl,
  splitHostPort
} from "../../src/layers/registry/hosts.js"
import { layerCompression, parseManifest } from "../../src/layers/registry/manifest.js"
import { offeredPlatforms, platformMatches, selectPlatform } from "../../src/layers/registry/platform.js"

describe("hosts", () => {
  it("talks to registry-1.docker.io for docker.io", () => {
    expect(apiHost("docker.io")).toBe("registry-1.docker.io")
    expect(apiHost("index.docker.io")).toBe("registry-1.docker.io")
    expect(apiHost("ghcr.io")).toBe("ghcr.io")
    expect(registryBaseUrl("docker.io", [])).toBe("https://registry-1.docker.io")
  })

  it("splits host and port, including IPv6", () => {
    expect(splitHostPort("localhost:5000")).toEqual({ hostname: "localhost", port: "5000" })
    expect(splitHostPort("[::1]:5000")).toEqual({ hostname: "::1", port: "5000" })
    expect(splitHostPort("::1")).toEqual({ hostname: "::1", port: undefined })
    expect(splitHostPort("Quay.IO")).toEqual({ hostname: "quay.io", port: undefined })
  })

  it("uses plain HTTP only for loopback and listed insecure registries", () => {
    for (const host of ["127.0.0.1:5000", "127.8.9.10", "localhost:5000", "[::1]:5000", "localhost"]) {
      expect(allowsPlainHttp(host, [])).toBe(true)
    }
    for (const host of ["128.0.0.1", "10.0.0.1:5000", "localhost.example.com", "ghcr.io", "127.0.0.1.nip.io"]) {
      expect(allowsPlainHttp(host, [])).toBe(false)
    }
    const insecure = parseInsecureRegistries(" reg.lan:5000, , other.lan ")
    expect(insecure).toEqual(["reg.lan:5000", "other.lan"])
    expect(allowsPlainHttp("reg.lan:5000", insecure)).toBe(true)
    expect(allowsPlainHttp("reg.lan:5001", insecure)).toBe(false)
    expect(allowsPlainHttp("other.lan:8080", insecure)).toBe(true)
    expect(registryBaseUrl("reg.lan:5000", insecure)).toBe("http://reg.lan:5000")
    expect(registryBaseUrl("reg.lan:5001", insecure)).toBe("https://reg.lan:5001")
  })
})

describe("platforms", () => {
  const linux = (architecture: string, variant?: string) => ({ os: "linux", architecture, variant })

  it("matches os and architecture, and the variant when one is wanted", () => {
    expect(platformMatches(linux("amd64"), linux("amd64"))).toBe(true)
    expect(platformMatches(linux("amd64"), { os: "windows", architecture: "amd64" })).toBe(false)
    expect(platformMatches(linux("arm", "v7"), linux("arm"))).toBe(true)
    expect(platformMatches(linux("arm", "v6"), linux("arm", "v7"))).toBe(false)
    expect(platformMatches(linux("arm"), linux("arm", "v7"))).toBe(false)
  })

  it("treats arm64 v8 as no variant", () => {
    expect(platformMatches(linux("arm64"), linux("arm64", "v8"))).toBe(true)
    expect(platformMatches(linux("arm64", "v8"), linux("arm64"))).toBe(true)
  })

  it("prefers an exact variant and ignores unknown/unknown entries", () => {
    const entries = [
      { id: "v6", platform: linux("arm", "v6") },
      { id: "v7", platform: linux("arm", "v7") },
      { id: "att", platform: { os: "unknown", architecture: "unknown" } },
      { id: "none" }
    ]
    expect(selectPlatform(entries, linux("arm", "v7"))?.id).toBe("v7")
    expect(selectPlatform(entries, linux("arm"))?.id).toBe("v6")
    expect(selectPlatform(entries, { os: "unknown", architecture: "unknown" })).toBeUndefined()
    expect(offeredPlatforms(entries)).toEqual(["linux/arm/v6", "linux/arm/v7"])
  })
})

describe("digests", () => {
  it("accepts only strict sha256/sha512 hex", () => {
    expect(parseDigest(`sha256:${"a".repeat(64)}`)).toEqual({ algorithm: "sha256", hex: "a".repeat(64) })
    expect(parseDigest(`sha512:${"0".repeat(128)}`)?.algorithm).toBe("sha512")
    for (const bad of [
      `sha256:${"A".repeat(64)}`,
      `sha256:${"a".repeat(63)}`,
      "sha256:../../etc",
      `md5:${"a".repeat(32)}`
    ]) {
      expect(parseDigest(bad)).toBeUndefined()
    }
  })

  it.effect("verifies bytes with the digest's own algorithm", () =>
    Effect.gen(function* () {
      const bytes = Buffer.from("hello")
      yield* verifyDigest(bytes, digestOf(bytes, "sha512"), "test")
      const error = yield* Effect.flip(verifyDigest(bytes, digestOf(Buffer.from("other")), "test"))
      expect(error._tag).toBe("DigestMismatch")
      expect(error.actual).toBe(digestOf(bytes))
    })
  )
})

describe("manifests", () => {
  const digest = `sha256:${"b".repeat(64)}`
  const manifest = (extra: object = {}) =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest, size: 10 },
        layers: [],
        ...extra
      })
    )
  const parse = (bytes: Buffer, contentType?: string) => Effect.either(parseManifest(bytes, contentType, "ref"))

  it.effect("tells indexes from manifests by mediaType, Content-Type or shape", () =>
    Effect.gen(function* () {
      const index = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] }))
      expect(Either.getOrThrow(yield* parse(manifest()))._tag).toBe("Manifest")
      expect(Either.getOrThrow(yield* parse(index))._tag).toBe("Index")
      expect(
        Either.getOrThrow(yield* parse(index, "application/vnd.docker.distribution.manifest.list.v2+json; charset=x"))
          ._tag
      ).toBe("Index")
    })
  )

  it.effect("refuses schema 1, unknown media types, bad digests and non-JSON", () =>
    Effect.gen(function* () {
      const messages = [
        manifest({ schemaVersion: 1 }),
        manifest({ mediaType: "application/vnd.cncf.helm.chart.v1+json" }),
        manifest({ config: { mediaType: "x", digest: "sha256:../../x", size: 1 } }),
        Buffer.from("<html>")
      ]
      const results = yield* Effect.forEach(messages, (bytes) => parse(bytes))
      const reasons = results.map((result) => (Either.isLeft(result) ? result.left.reason : "accepted"))
      expect(reasons[0]).toContain("schema 1")
      expect(reasons[1]).toContain("unsupported manifest media type application/vnd.cncf.helm.chart.v1+json")
      expect(reasons[2]).toContain("invalid image manifest")
      expect(reasons[3]).toContain("not a JSON object")
    })
  )

  it("maps layer media types to compressions, and nothing else", () => {
    expect(layerCompression("application/vnd.oci.image.layer.v1.tar")).toBe("none")
    expect(layerCompression("application/vnd.oci.image.layer.v1.tar+gzip")).toBe("gzip")
    expect(layerCompression("application/vnd.oci.image.layer.v1.tar+zstd")).toBe("zstd")
    expect(layerCompression("application/vnd.docker.image.rootfs.diff.tar.gzip")).toBe("gzip")
    expect(layerCompression("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")).toBeUndefined()
    expect(layerCompression("application/vnd.oci.image.layer.v1.tar+gzip+encrypted")).toBeUndefined()
  })
})
