import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { ImageReference, Platform } from "../../src/domain/reference.js"
import {
  defaultImageName,
  defaultPlatform,
  parsePlatform,
  parseReference,
  platformMatches,
  validateImageName
} from "../../src/pipelines/pull/parse-reference.js"

const sha256 = "3f1d8e5c9a7b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e"
const sha512 = `${sha256}${sha256}`

type Expected = Omit<ImageReference, "normalized"> & { readonly normalized: string }

const ref = (
  registry: string,
  repository: string,
  tag: string | undefined,
  digest: string | undefined,
  normalized: string
): Expected => ({ registry, repository, tag, digest, normalized })

const validReferences: ReadonlyArray<readonly [string, Expected]> = [
  ["debian", ref("docker.io", "library/debian", "latest", undefined, "docker.io/library/debian:latest")],
  ["debian:bookworm", ref("docker.io", "library/debian", "bookworm", undefined, "docker.io/library/debian:bookworm")],
  ["user/app", ref("docker.io", "user/app", "latest", undefined, "docker.io/user/app:latest")],
  ["docker.io/debian", ref("docker.io", "library/debian", "latest", undefined, "docker.io/library/debian:latest")],
  ["docker.io/library/debian:12", ref("docker.io", "library/debian", "12", undefined, "docker.io/library/debian:12")],
  [
    "index.docker.io/debian",
    ref("docker.io", "library/debian", "latest", undefined, "docker.io/library/debian:latest")
  ],
  ["index.docker.io/user/app:1.0", ref("docker.io", "user/app", "1.0", undefined, "docker.io/user/app:1.0")],
  // Like docker, only index.docker.io is an alias; registry-1.docker.io is an ordinary host.
  [
    "registry-1.docker.io/library/debian",
    ref("registry-1.docker.io", "library/debian", "latest", undefined, "registry-1.docker.io/library/debian:latest")
  ],
  [
    `ghcr.io/o/app@sha256:${sha256}`,
    ref("ghcr.io", "o/app", undefined, `sha256:${sha256}`, `ghcr.io/o/app@sha256:${sha256}`)
  ],
  [
    `debian:latest@sha256:${sha256}`,
    ref("docker.io", "library/debian", "latest", `sha256:${sha256}`, `docker.io/library/debian:latest@sha256:${sha256}`)
  ],
  [
    `quay.io/o/app@sha512:${sha512}`,
    ref("quay.io", "o/app", undefined, `sha512:${sha512}`, `quay.io/o/app@sha512:${sha512}`)
  ],
  ["localhost/app", ref("localhost", "app", "latest", undefined, "localhost/app:latest")],
  ["localhost:5000/x", ref("localhost:5000", "x", "latest", undefined, "localhost:5000/x:latest")],
  // No "/": docker reads this as the Hub image "localhost" with tag 5000.
  ["localhost:5000", ref("docker.io", "library/localhost", "5000", undefined, "docker.io/library/localhost:5000")],
  [
    `host:5000/a/b:tag@sha256:${sha256}`,
    ref("host:5000", "a/b", "tag", `sha256:${sha256}`, `host:5000/a/b:tag@sha256:${sha256}`)
  ],
  ["[::1]:5000/x", ref("[::1]:5000", "x", "latest", undefined, "[::1]:5000/x:latest")],
  ["[fe80::1]/x:v1", ref("[fe80::1]", "x", "v1", undefined, "[fe80::1]/x:v1")],
  ["127.0.0.1:5000/app", ref("127.0.0.1:5000", "app", "latest", undefined, "127.0.0.1:5000/app:latest")],
  ["Example.COM/app:V1.0_RC", ref("Example.COM", "app", "V1.0_RC", undefined, "Example.COM/app:V1.0_RC")],
  [
    "my-registry.example.com:443/team/app:2024.01",
    ref("my-registry.example.com:443", "team/app", "2024.01", undefined, "my-registry.example.com:443/team/app:2024.01")
  ],
  ["quay.io/a/b/c/d", ref("quay.io", "a/b/c/d", "latest", undefined, "quay.io/a/b/c/d:latest")],
  ["a__b", ref("docker.io", "library/a__b", "latest", undefined, "docker.io/library/a__b:latest")],
  ["a_b.c---d", ref("docker.io", "library/a_b.c---d", "latest", undefined, "docker.io/library/a_b.c---d:latest")],
  ["x:_under", ref("docker.io", "library/x", "_under", undefined, "docker.io/library/x:_under")],
  ["x:a-b.C_d", ref("docker.io", "library/x", "a-b.C_d", undefined, "docker.io/library/x:a-b.C_d")]
]

/** distribution's limit is on the repository path: `library/` is 8 characters, so 247 more reach 255. */
const hubAtLimit = "a".repeat(247)
const hostAtLimit = `example.com/${"b".repeat(255)}`
const longTag = "t".repeat(128)

const invalidReferences: ReadonlyArray<readonly [string, string]> = [
  ["", "reference is empty"],
  ["Debian", `repository names must be lowercase (found "D" at position 1)`],
  ["user/App", "repository names must be lowercase"],
  ["ghcr.io/o/App", `repository names must be lowercase (found "A" at position 11)`],
  ["a//b", "empty path component at position 3"],
  ["/a", "empty path component at position 1"],
  ["a/", "empty path component at position 3"],
  ["ghcr.io/", "empty path component at position 9"],
  ["debian:", "tag is empty"],
  [":tag", "repository name is empty"],
  ["-leading", `path component "-leading" must start with a lowercase letter or digit`],
  ["trailing-", `path component "trailing-" must end with a lowercase letter or digit`],
  ["a___b", `invalid separator "___" at position 2`],
  ["a..b", `invalid separator ".."`],
  ["a._b", `invalid separator "._"`],
  ["a-_b", `invalid separator "-_"`],
  ["a b", `invalid character " " at position 2 in repository name`],
  ["a\tb", `invalid character "\\t" at position 2`],
  ["debian:tag:tag", `invalid character ":" at position 7 in repository name`],
  [`debian:${longTag}x`, "tag is too long (129 characters, max 128)"],
  ["debian:.hidden", "tag must start with a letter, digit or"],
  ["debian:-x", "tag must start with a letter, digit or"],
  ["debian:a$", `invalid character "$" at position 9 in tag`],
  ["debian@sha256:abc", "sha256 digest must have 64 hex digits, got 3"],
  [`debian@sha256:${sha256}0`, "sha256 digest must have 64 hex digits, got 65"],
  [`debian@sha256:${sha256.slice(1)}`, "sha256 digest must have 64 hex digits, got 63"],
  [`debian@sha512:${sha256}`, "sha512 digest must have 128 hex digits, got 64"],
  [`debian@sha256:${sha256.toUpperCase()}`, "digest hex must be lowercase"],
  [`debian@sha256:${"z".repeat(64)}`, `invalid character "z" at position 15 in digest`],
  [`debian@md5:${"a".repeat(32)}`, `unsupported digest algorithm "md5"`],
  [`debian@SHA256:${sha256}`, `unsupported digest algorithm "SHA256"`],
  ["debian@", "digest is empty"],
  ["debian@sha256", "must be algorithm:hex"],
  [`debian@:${sha256}`, "digest algorithm is empty"],
  ["debian@sha256:", "sha256 digest has no hex value"],
  ["a@b@c", `more than one "@"`],
  [sha256, "image ID"],
  ["::1/x", "write IPv6 addresses in brackets"],
  ["[::1/x", `missing its closing "]"`],
  ["[]/x", "IPv6 registry address is empty"],
  ["[::g]/x", `invalid character "g" at position 4 in IPv6 registry address`],
  ["[::1]x/y", `unexpected "x" at position 6`],
  ["localhost:/x", "registry port is empty"],
  ["localhost:5a/x", `invalid character "a" at position 12 in registry port`],
  ["localhost:99999/x", "registry port 99999 is out of range"],
  ["localhost:0/x", "registry port 0 is out of range"],
  ["-bad.io/x", `registry host label "-bad" must start and end with a letter or digit`],
  ["bad-.io/x", `registry host label "bad-" must start and end`],
  ["bad..io/x", "registry host has an empty label at position 5"],
  [".io/x", "registry host has an empty label at position 1"],
  ["bad_host.io/x", `invalid character "_" at position 4 in registry host`],
  [`${hubAtLimit}a`, "repository name is too long (256 characters without the registry, max 255)"],
  [`${hostAtLimit}b:tag`, "repository name is too long (256 characters"]
]

describe("parseReference", () => {
  for (const [input, expected] of validReferences) {
    it.effect(`accepts ${JSON.stringify(input)}`, () =>
      Effect.gen(function* () {
        expect(yield* parseReference(input)).toStrictEqual(expected)
      })
    )
  }

  for (const [input, reason] of invalidReferences) {
    it.effect(`rejects ${JSON.stringify(input.length > 60 ? `${input.slice(0, 60)}…` : input)}`, () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(parseReference(input))
        expect(error._tag).toBe("InvalidReference")
        expect(error.reference).toBe(input)
        expect(error.reason).toContain(reason)
      })
    )
  }

  it.effect("accepts names exactly at the 255-character limit", () =>
    Effect.gen(function* () {
      const hub = yield* parseReference(hubAtLimit)
      expect(hub.repository).toHaveLength(255)
      const host = yield* parseReference(`${hostAtLimit}:tag`)
      expect(host.repository).toHaveLength(255)
      expect(host.tag).toBe("tag")
    })
  )

  it.effect("accepts a 128-character tag", () =>
    Effect.gen(function* () {
      expect((yield* parseReference(`debian:${longTag}`)).tag).toBe(longTag)
    })
  )

  it.effect("round-trips: parsing the normalized form gives the same reference", () =>
    Effect.gen(function* () {
      for (const [input] of validReferences) {
        const first = yield* parseReference(input)
        expect(yield* parseReference(first.normalized)).toStrictEqual(first)
      }
    })
  )

  it.effect("failure message names the reference and the reason", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(parseReference("a//b"))
      expect(error.message).toBe(
        `invalid image reference "a//b": empty path component at position 3 (check for "//" or a leading or trailing "/")`
      )
    })
  )
})

const hand = (repository: string, tag: string | undefined, digest: string | undefined): ImageReference => ({
  registry: "docker.io",
  repository,
  tag,
  digest,
  normalized: "unused"
})

describe("defaultImageName", () => {
  const cases: ReadonlyArray<readonly [string, ImageReference | string, string]> = [
    ["tag", "debian:bookworm", "debian-bookworm"],
    ["implicit latest", "debian", "debian-latest"],
    ["digest only", `ghcr.io/o/app@sha256:${sha256}`, `app-${sha256.slice(0, 12)}`],
    ["sha512 digest only", `ghcr.io/o/app@sha512:${sha512}`, `app-${sha512.slice(0, 12)}`],
    ["tag and digest prefer the tag", `ghcr.io/o/app:1.2@sha256:${sha256}`, "app-1.2"],
    ["last path component", "quay.io/a/b/tool:v2", "tool-v2"],
    ["uppercase tag is lowercased", "app:V1_X", "app-v1_x"],
    ["neither tag nor digest", hand("library/debian", undefined, undefined), "debian-latest"],
    ["empty tag counts as none", hand("library/debian", "", undefined), "debian-latest"],
    ["disallowed characters become dashes", hand("o/My App", "a+b", undefined), "my-app-a-b"],
    ["leading disallowed characters are dropped", hand("o/_x", "1", undefined), "x-1"],
    ["nothing usable falls back", hand("", undefined, undefined), "latest"]
  ]
  for (const [label, input, expected] of cases) {
    it.effect(label, () =>
      Effect.gen(function* () {
        const reference = typeof input === "string" ? yield* parseReference(input) : input
        expect(defaultImageName(reference)).toBe(expected)
        expect(yield* validateImageName(defaultImageName(reference))).toBe(expected)
      })
    )
  }

  it.effect("long names are cut to 64 characters and stay valid", () =>
    Effect.gen(function* () {
      const longBase = "r".repeat(200)
      const bothLong = defaultImageName(yield* parseReference(`${longBase}:${"t".repeat(128)}`))
      expect(bothLong).toBe(`${"r".repeat(31)}-${"t".repeat(32)}`)
      const shortTag = defaultImageName(yield* parseReference(`${longBase}:v1`))
      expect(shortTag).toBe(`${"r".repeat(61)}-v1`)
      const shortBase = defaultImageName(yield* parseReference(`app:${"t".repeat(128)}`))
      expect(shortBase).toBe(`app-${"t".repeat(60)}`)
      for (const name of [bothLong, shortTag, shortBase]) {
        expect(name).toHaveLength(64)
        expect(yield* validateImageName(name)).toBe(name)
      }
    })
  )
})

describe("validateImageName", () => {
  const valid = ["debian-bookworm", "a", "0", "a".repeat(64), "x.y_z-1", "9lives", "a..b"]
  for (const name of valid) {
    it.effect(`accepts ${JSON.stringify(name)}`, () =>
      Effect.gen(function* () {
        expect(yield* validateImageName(name)).toBe(name)
      })
    )
  }

  const invalid: ReadonlyArray<readonly [string, string]> = [
    ["", "name is empty"],
    [".", `cannot be "." or ".."`],
    ["..", `cannot be "." or ".."`],
    ["a/b", `cannot contain "/"`],
    ["../etc", `cannot contain "/"`],
    ["/abs", `cannot contain "/"`],
    ["a\\b", `cannot contain "/" or "\\"`],
    ["a".repeat(65), "name is too long (65 characters, max 64)"],
    ["Debian", `names must be lowercase (found "D" at position 1)`],
    ["-x", "must start with a lowercase letter or digit"],
    [".hidden", "must start with a lowercase letter or digit"],
    ["_x", "must start with a lowercase letter or digit"],
    ["a b", `invalid character " " at position 2`],
    ["a:b", `invalid character ":" at position 2`],
    ["caf\u00e9", `invalid character "\u00e9" at position 4`],
    ["a\u0000b", `invalid character "\\u0000" at position 2`]
  ]
  for (const [name, reason] of invalid) {
    it.effect(`rejects ${JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}…` : name)}`, () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(validateImageName(name))
        expect(error._tag).toBe("InvalidName")
        expect(error.name).toBe(name)
        expect(error.reason).toContain(reason)
      })
    )
  }
})

const p = (os: string, architecture: string, variant?: string): Platform =>
  variant === undefined ? { os, architecture } : { os, architecture, variant }

describe("parsePlatform", () => {
  const valid: ReadonlyArray<readonly [string, Platform]> = [
    ["linux/amd64", p("linux", "amd64")],
    ["linux/arm64", p("linux", "arm64")],
    ["linux/arm64/v8", p("linux", "arm64", "v8")],
    ["linux/aarch64/8", p("linux", "arm64", "v8")],
    ["Linux/AMD64", p("linux", "amd64")],
    ["linux/x86_64", p("linux", "amd64")],
    ["linux/x86-64", p("linux", "amd64")],
    ["linux/amd64/v1", p("linux", "amd64")],
    ["linux/amd64/v3", p("linux", "amd64", "v3")],
    ["linux/aarch64", p("linux", "arm64")],
    ["linux/armhf", p("linux", "arm", "v7")],
    ["linux/armel", p("linux", "arm", "v6")],
    ["linux/arm", p("linux", "arm", "v7")],
    ["linux/arm/6", p("linux", "arm", "v6")],
    ["linux/arm/v5", p("linux", "arm", "v5")],
    ["linux/i386", p("linux", "386")],
    ["linux/riscv64", p("linux", "riscv64")],
    ["linux/ppc64le", p("linux", "ppc64le")],
    ["linux/s390x", p("linux", "s390x")]
  ]
  for (const [input, expected] of valid) {
    it.effect(`parses ${input}`, () =>
      Effect.gen(function* () {
        expect(yield* parsePlatform(input)).toStrictEqual(expected)
      })
    )
  }

  const invalid: ReadonlyArray<readonly [string, string]> = [
    ["", "platform is empty"],
    ["linux", "expected os/arch[/variant]"],
    ["amd64", "expected os/arch[/variant]"],
    ["linux/", "architecture is empty"],
    ["/amd64", "operating system is empty"],
    ["linux/amd64/", "variant is empty"],
    ["linux/arm/v7/x", `too many "/"`],
    ["linux/amd 64", `invalid character " " in architecture`],
    ["linux/amd64!", `invalid character "!" in architecture`],
    ["lin:ux/amd64", `invalid character ":" in operating system`]
  ]
  for (const [input, reason] of invalid) {
    it.effect(`rejects ${JSON.stringify(input)}`, () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(parsePlatform(input))
        expect(error._tag).toBe("InvalidPlatform")
        expect(error.input).toBe(input)
        expect(error.reason).toContain(reason)
      })
    )
  }

  it("defaultPlatform is linux/amd64", () => {
    expect(defaultPlatform).toStrictEqual({ os: "linux", architecture: "amd64" })
  })
})

describe("platformMatches", () => {
  const cases: ReadonlyArray<readonly [Platform, Platform, boolean]> = [
    [p("linux", "amd64"), p("linux", "amd64"), true],
    [p("linux", "arm64"), p("linux", "arm64", "v8"), true],
    [p("linux", "arm64", "v8"), p("linux", "arm64"), true],
    [p("linux", "arm64", "v8"), p("linux", "arm64", "v8"), true],
    [p("linux", "arm", "v7"), p("linux", "arm"), true],
    [p("linux", "aarch64"), p("linux", "arm64", "v8"), true],
    [p("linux", "x86_64"), p("linux", "amd64"), true],
    [p("Linux", "AMD64"), p("linux", "amd64"), true],
    [p("linux", "amd64"), p("linux", "arm64"), false],
    [p("linux", "amd64"), p("windows", "amd64"), false],
    [p("linux", "arm", "v7"), p("linux", "arm", "v6"), false],
    [p("linux", "arm64"), p("linux", "arm64", "v9"), false],
    [p("linux", "arm64", "v8"), p("linux", "arm64", "v9"), false],
    [p("linux", "amd64"), p("linux", "amd64", "v3"), false],
    [p("linux", "arm", "v6"), p("linux", "arm64"), false]
  ]
  for (const [wanted, candidate, expected] of cases) {
    it(`${JSON.stringify(wanted)} ${expected ? "matches" : "does not match"} ${JSON.stringify(candidate)}`, () => {
      expect(platformMatches(wanted, candidate)).toBe(expected)
    })
  }
})
