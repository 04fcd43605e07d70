import { Effect } from "effect"
import { InvalidPlatform } from "../../domain/errors.js"
import type { Platform } from "../../domain/reference.js"

/** Firecracker guests are Linux; amd64 is what most hosts run. */
export const defaultPlatform: Platform = { os: "linux", architecture: "amd64" }

const make = (os: string, architecture: string, variant: string): Platform =>
  variant === "" ? { os, architecture } : { os, architecture, variant }

/**
 * Canonical spelling of a platform, following containerd's normalization: lowercase, architecture
 * aliases (`x86_64` → amd64, `aarch64` → arm64, `armhf` → arm/v7, `armel` → arm/v6, `i386` → 386),
 * bare numeric variants get their "v", and plain `arm` means arm/v7. Unlike containerd, an arm64
 * `v8` is kept as written; `platformMatches` treats it as equal to no variant.
 */
export const normalizePlatform = (platform: Platform): Platform => {
  const os = platform.os.toLowerCase() === "macos" ? "darwin" : platform.os.toLowerCase()
  const architecture = platform.architecture.toLowerCase()
  const variant = (platform.variant ?? "").toLowerCase()
  switch (architecture) {
    case "x86_64":
    case "x86-64":
    case "amd64":
      return make(os, "amd64", variant === "v1" ? "" : variant)
    case "aarch64":
    case "arm64":
      return make(os, "arm64", variant === "8" || variant === "v8.0" ? "v8" : variant)
    case "armhf":
      return make(os, "arm", "v7")
    case "armel":
      return make(os, "arm", "v6")
    case "arm":
      return make(os, "arm", variant === "" ? "v7" : /^[5-8]$/.test(variant) ? `v${variant}` : variant)
    case "i386":
      return make(os, "386", "")
    default:
      return make(os, architecture, variant)
  }
}

const checkPart = (part: string, what: string): string | undefined => {
  if (part.length === 0) return `${what} is empty`
  const bad = part.search(/[^a-z0-9._-]/)
  if (bad !== -1) return `invalid character ${JSON.stringify(part[bad])} in ${what}`
  return undefined
}

/** Parses `os/arch[/variant]` (e.g. `linux/arm64/v8`), case-insensitively, into its normalized form. */
export const parsePlatform = Effect.fn("parsePlatform")(function* (input: string) {
  const reject = (reason: string) => new InvalidPlatform({ input, reason })
  if (input.length === 0) return yield* reject("platform is empty (expected os/arch[/variant], e.g. linux/amd64)")
  const parts = input.toLowerCase().split("/")
  if (parts.length < 2) return yield* reject("expected os/arch[/variant], e.g. linux/amd64 or linux/arm64")
  if (parts.length > 3) return yield* reject(`too many "/" (expected os/arch[/variant], e.g. linux/arm64/v8)`)
  const [os, architecture, variant] = parts as [string, string, string | undefined]
  const problem =
    checkPart(os, "operating system") ??
    checkPart(architecture, "architecture") ??
    (variant === undefined ? undefined : checkPart(variant, "variant"))
  if (problem !== undefined) return yield* reject(problem)
  return normalizePlatform({ os, architecture, variant })
})

/**
 * Whether an image built for `candidate` satisfies a request for `wanted`, containerd-style: os and
 * architecture must agree, and variants too, except that arm64 `v8` is the same as no variant (it is
 * the baseline every arm64 CPU runs).
 */
export const platformMatches = (wanted: Platform, candidate: Platform): boolean => {
  const a = normalizePlatform(wanted)
  const b = normalizePlatform(candidate)
  if (a.os !== b.os || a.architecture !== b.architecture) return false
  const variant = (p: Platform) => (p.architecture === "arm64" && p.variant === "v8" ? "" : (p.variant ?? ""))
  return variant(a) === variant(b)
}
