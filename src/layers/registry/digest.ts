import { createHash, type Hash } from "node:crypto"
import { Effect } from "effect"
import { DigestMismatch } from "../../domain/errors.js"

/** The algorithms OCI allows for content digests, with the hex length each must have. */
const hexLength = { sha256: 64, sha512: 128 } as const

export type DigestAlgorithm = keyof typeof hexLength

export interface ParsedDigest {
  readonly algorithm: DigestAlgorithm
  readonly hex: string
}

/** Registries and manifests are untrusted: a digest doubles as a file name, so accept only the strict form. */
export const parseDigest = (digest: string): ParsedDigest | undefined => {
  const match = /^(sha256|sha512):([a-f0-9]+)$/.exec(digest)
  if (!match) return undefined
  const algorithm = match[1] as DigestAlgorithm
  return match[2]!.length === hexLength[algorithm] ? { algorithm, hex: match[2]! } : undefined
}

/** The hex length of `algorithm`'s digests; undefined for an algorithm OCI does not allow. */
export const digestHexLength = (algorithm: string): number | undefined =>
  Object.hasOwn(hexLength, algorithm) ? hexLength[algorithm as DigestAlgorithm] : undefined

export const isDigest = (digest: string): boolean => parseDigest(digest) !== undefined

export const digestPattern = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/

export const newHasher = (algorithm: DigestAlgorithm): Hash => createHash(algorithm)

export const digestOf = (bytes: Uint8Array, algorithm: DigestAlgorithm = "sha256"): string =>
  `${algorithm}:${createHash(algorithm).update(bytes).digest("hex")}`

/** Fails with DigestMismatch unless `bytes` hash to `expected` (hashed with `expected`'s own algorithm). */
export const verifyDigest = (
  bytes: Uint8Array,
  expected: string,
  what: string
): Effect.Effect<void, DigestMismatch> => {
  const parsed = parseDigest(expected)
  if (!parsed) {
    return Effect.fail(new DigestMismatch({ expected, actual: "", reason: `${what}: not a valid digest` }))
  }
  const actual = digestOf(bytes, parsed.algorithm)
  return actual === expected
    ? Effect.void
    : Effect.fail(new DigestMismatch({ expected, actual, reason: `${what} content does not match its digest` }))
}
