import { formatPlatform, type Platform } from "../../domain/reference.js"

/** arm64 images are `v8` whether or not the variant is written down. */
const variantOf = (platform: Platform): string | undefined => {
  const variant = platform.variant === "" ? undefined : platform.variant
  return platform.architecture === "arm64" && variant === "v8" ? undefined : variant
}

/**
 * Local stand-in for the pipeline's matcher: os and architecture equal, and the variant equal
 * unless the caller did not ask for one.
 */
export const platformMatches = (candidate: Platform, wanted: Platform): boolean =>
  candidate.os === wanted.os &&
  candidate.architecture === wanted.architecture &&
  (variantOf(wanted) === undefined || variantOf(candidate) === variantOf(wanted))

/** Entries of an index carry their platform; attestation manifests say `unknown/unknown`. */
export interface PlatformEntry {
  readonly platform?: Platform | undefined
}

const isRealPlatform = (platform: Platform | undefined): platform is Platform =>
  platform !== undefined && platform.os !== "unknown" && platform.architecture !== "unknown"

/** The best entry for `wanted`: an exact variant match first, else the first compatible one. */
export const selectPlatform = <A extends PlatformEntry>(entries: ReadonlyArray<A>, wanted: Platform): A | undefined => {
  const compatible = entries.filter(
    (entry) => isRealPlatform(entry.platform) && platformMatches(entry.platform, wanted)
  )
  return compatible.find((entry) => variantOf(entry.platform!) === variantOf(wanted)) ?? compatible[0]
}

/** What an index offers, for the PlatformNotFound message: `linux/amd64`, `linux/arm64/v8`, ... */
export const offeredPlatforms = (entries: ReadonlyArray<PlatformEntry>): ReadonlyArray<string> => [
  ...new Set(entries.flatMap((entry) => (isRealPlatform(entry.platform) ? [formatPlatform(entry.platform)] : [])))
]
