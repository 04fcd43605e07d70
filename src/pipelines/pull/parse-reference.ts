import { Effect, Either } from "effect"
import { InvalidReference } from "../../domain/errors.js"
import type { ImageReference } from "../../domain/reference.js"
import { digestHexLength } from "../../layers/registry/digest.js"

export { defaultImageName, validateImageName } from "./image-name.js"
export { defaultPlatform, normalizePlatform, parsePlatform, platformMatches } from "./parse-platform.js"

/**
 * The docker reference grammar (distribution/reference) plus Docker Hub normalization:
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [ domain "/" ] path
 *   domain    := host [ ":" port ]          host := domain-name | "[" ipv6 "]"
 *   path      := component ( "/" component )*
 *   component := [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag       := [\w][\w.-]{0,127}
 *   digest    := ( "sha256" | "sha512" ) ":" lowercase hex of the algorithm's exact length
 *
 * Hand-written rather than one big regex so every rejection can say exactly what is wrong and where.
 */

const dockerHub = "docker.io"
/** The legacy Docker Hub name; docker rewrites it to docker.io, so the same image gets one name. */
const legacyDockerHub = "index.docker.io"
const officialPrefix = "library/"
/**
 * distribution's RepositoryNameTotalLengthMax, applied as its Parse does: to the repository path
 * after normalization (`library/` included), not counting the registry.
 */
const repositoryLengthMax = 255
const tagLengthMax = 128

/** A rejection reason; `undefined` means the part is valid. */
type Problem = string | undefined

/** JSON quoting makes spaces, tabs and control characters visible in a one-line message. */
const show = (char: string): string => JSON.stringify(char)

/** Positions in reasons are 1-based offsets into the whole input, as a person would count. */
const at = (offset: number): string => `position ${offset + 1}`

const firstIndex = (text: string, predicate: (char: string) => boolean): number => {
  for (let i = 0; i < text.length; i++) if (predicate(text[i]!)) return i
  return -1
}

const isLowerAlnum = (char: string) => (char >= "a" && char <= "z") || (char >= "0" && char <= "9")
const isUpper = (char: string) => char >= "A" && char <= "Z"
const isDigit = (char: string) => char >= "0" && char <= "9"
const isWord = (char: string) => isLowerAlnum(char) || isUpper(char) || char === "_"

const checkPathComponent = (component: string, offset: number): Problem => {
  if (component.length === 0)
    return `empty path component at ${at(offset)} (check for "//" or a leading or trailing "/")`
  const upper = firstIndex(component, isUpper)
  if (upper !== -1) {
    return `repository names must be lowercase (found ${show(component[upper]!)} at ${at(offset + upper)})`
  }
  const bad = firstIndex(component, (c) => !isLowerAlnum(c) && c !== "." && c !== "_" && c !== "-")
  if (bad !== -1) return `invalid character ${show(component[bad]!)} at ${at(offset + bad)} in repository name`
  if (!isLowerAlnum(component[0]!)) {
    return `path component "${component}" must start with a lowercase letter or digit (${at(offset)})`
  }
  if (!isLowerAlnum(component[component.length - 1]!)) {
    return `path component "${component}" must end with a lowercase letter or digit (${at(offset + component.length - 1)})`
  }
  // Separators between alphanumeric runs: exactly ".", "_", "__", or one or more "-".
  for (const match of component.matchAll(/[._-]+/g)) {
    const separator = match[0]
    if (separator === "." || separator === "_" || separator === "__" || /^-+$/.test(separator)) continue
    return `invalid separator "${separator}" at ${at(offset + match.index)} in repository name (allowed: ".", "_", "__" or dashes)`
  }
  return undefined
}

const checkPath = (path: string, offset: number): Problem => {
  let start = 0
  for (const component of path.split("/")) {
    const problem = checkPathComponent(component, offset + start)
    if (problem !== undefined) return problem
    start += component.length + 1
  }
  return undefined
}

const checkPort = (port: string, offset: number): Problem => {
  if (port.length === 0) return `registry port is empty (${at(offset - 1)})`
  const bad = firstIndex(port, (c) => !isDigit(c))
  if (bad !== -1) return `invalid character ${show(port[bad]!)} at ${at(offset + bad)} in registry port`
  const value = Number(port)
  // The grammar accepts any digits; a port that cannot exist is better caught here than as a connect error.
  if (value < 1 || value > 65535) return `registry port ${port} is out of range (1-65535)`
  return undefined
}

const checkHostLabel = (label: string, offset: number): Problem => {
  if (label.length === 0) return `registry host has an empty label at ${at(offset)}`
  const bad = firstIndex(label, (c) => !isLowerAlnum(c) && !isUpper(c) && c !== "-")
  if (bad !== -1) return `invalid character ${show(label[bad]!)} at ${at(offset + bad)} in registry host`
  if (label.startsWith("-") || label.endsWith("-")) {
    return `registry host label "${label}" must start and end with a letter or digit (${at(offset)})`
  }
  return undefined
}

const checkIpv6Domain = (domain: string): Problem => {
  const close = domain.indexOf("]")
  if (close === -1) return `IPv6 registry address is missing its closing "]"`
  const address = domain.slice(1, close)
  if (address.length === 0) return "IPv6 registry address is empty"
  const bad = firstIndex(address, (c) => !isDigit(c) && !/[a-fA-F:]/.test(c))
  if (bad !== -1) return `invalid character ${show(address[bad]!)} at ${at(1 + bad)} in IPv6 registry address`
  const rest = domain.slice(close + 1)
  if (rest.length === 0) return undefined
  if (!rest.startsWith(":")) return `unexpected ${show(rest[0]!)} at ${at(close + 1)} after IPv6 registry address`
  return checkPort(rest.slice(1), close + 2)
}

/** The domain always starts the input, so its offsets are input offsets. */
const checkDomain = (domain: string): Problem => {
  if (domain.startsWith("[")) return checkIpv6Domain(domain)
  const colon = domain.indexOf(":")
  const host = colon === -1 ? domain : domain.slice(0, colon)
  if (colon !== -1 && domain.indexOf(":", colon + 1) !== -1) {
    return `registry "${domain}" has more than one ":" (write IPv6 addresses in brackets, e.g. [::1]:5000)`
  }
  let start = 0
  for (const label of host.split(".")) {
    const problem = checkHostLabel(label, start)
    if (problem !== undefined) return problem
    start += label.length + 1
  }
  return colon === -1 ? undefined : checkPort(domain.slice(colon + 1), colon + 1)
}

const checkTag = (tag: string, offset: number): Problem => {
  if (tag.length === 0) return `tag is empty (nothing after ":" at ${at(offset - 1)})`
  if (tag.length > tagLengthMax) return `tag is too long (${tag.length} characters, max ${tagLengthMax})`
  const bad = firstIndex(tag, (c) => !isWord(c) && c !== "." && c !== "-")
  if (bad !== -1) return `invalid character ${show(tag[bad]!)} at ${at(offset + bad)} in tag`
  if (!isWord(tag[0]!)) return `tag must start with a letter, digit or "_" (found ${show(tag[0]!)} at ${at(offset)})`
  return undefined
}

const checkDigest = (digest: string, offset: number): Problem => {
  if (digest.length === 0) return `digest is empty (nothing after "@" at ${at(offset - 1)})`
  const colon = digest.indexOf(":")
  if (colon === -1) return `digest "${digest}" must be algorithm:hex, e.g. sha256:<64 hex digits>`
  const algorithm = digest.slice(0, colon)
  const hex = digest.slice(colon + 1)
  if (algorithm.length === 0) return `digest algorithm is empty (${at(offset)})`
  const expected = digestHexLength(algorithm)
  if (expected === undefined)
    return `unsupported digest algorithm "${algorithm}" (only sha256 and sha512 are supported)`
  if (hex.length === 0) return `${algorithm} digest has no hex value`
  const hexOffset = offset + colon + 1
  const upper = firstIndex(hex, (c) => /[A-F]/.test(c))
  if (upper !== -1) return `digest hex must be lowercase (found ${show(hex[upper]!)} at ${at(hexOffset + upper)})`
  const bad = firstIndex(hex, (c) => !/[0-9a-f]/.test(c))
  if (bad !== -1) return `invalid character ${show(hex[bad]!)} at ${at(hexOffset + bad)} in digest`
  if (hex.length !== expected) return `${algorithm} digest must have ${expected} hex digits, got ${hex.length}`
  return undefined
}

/**
 * distribution's splitDockerDomain: the first path component names a registry when it looks like a
 * host (a "." or ":", or "localhost") or is not lowercase — repository paths never have upper case,
 * so `LOCALDOMAIN/debian` and `Docker/docker` name hosts, as docker reads them.
 */
const splitDomain = (name: string): { readonly domain: string | undefined; readonly path: string } => {
  const slash = name.indexOf("/")
  if (slash === -1) return { domain: undefined, path: name }
  const first = name.slice(0, slash)
  // A leading "[" can only be a (broken) IPv6 host; treating it as one gives the better error.
  const isHost =
    first.includes(".") ||
    first.includes(":") ||
    first === "localhost" ||
    first.startsWith("[") ||
    first.toLowerCase() !== first
  return isHost ? { domain: first, path: name.slice(slash + 1) } : { domain: undefined, path: name }
}

/** `parseReference` without the Effect: the reference, or why it is not one. */
export const parseReferenceEither = (input: string): Either.Either<ImageReference, string> => {
  if (input.length === 0) return Either.left("reference is empty")
  // docker refuses these: a bare 64-hex string is an image ID, and accepting it as a name would be ambiguous.
  if (/^[a-f0-9]{64}$/.test(input)) {
    return Either.left("a 64-character hex string is an image ID, not a repository name")
  }

  const atSign = input.indexOf("@")
  if (atSign !== -1 && input.indexOf("@", atSign + 1) !== -1) {
    return Either.left(`more than one "@" (${at(input.indexOf("@", atSign + 1))})`)
  }
  const namePart = atSign === -1 ? input : input.slice(0, atSign)
  const digest = atSign === -1 ? undefined : input.slice(atSign + 1)

  // A ":" after the last "/" starts the tag; earlier ones belong to a registry port.
  const colon = namePart.lastIndexOf(":")
  const hasTag = colon > namePart.lastIndexOf("/")
  const name = hasTag ? namePart.slice(0, colon) : namePart
  const tag = hasTag ? namePart.slice(colon + 1) : undefined
  if (name.length === 0) return Either.left("repository name is empty")

  const { domain, path } = splitDomain(name)
  const problem =
    (domain === undefined ? undefined : checkDomain(domain)) ??
    checkPath(path, domain === undefined ? 0 : domain.length + 1) ??
    (tag === undefined ? undefined : checkTag(tag, colon + 1)) ??
    (digest === undefined ? undefined : checkDigest(digest, atSign + 1))
  if (problem !== undefined) return Either.left(problem)

  const registry = domain === undefined || domain === legacyDockerHub ? dockerHub : domain
  const repository = registry === dockerHub && !path.includes("/") ? officialPrefix + path : path
  if (repository.length > repositoryLengthMax) {
    return Either.left(
      `repository name is too long (${repository.length} characters without the registry, max ${repositoryLengthMax})`
    )
  }
  const fullName = `${registry}/${repository}`

  const finalTag = tag === undefined && digest === undefined ? "latest" : tag
  const normalized =
    fullName + (finalTag === undefined ? "" : `:${finalTag}`) + (digest === undefined ? "" : `@${digest}`)
  return Either.right({ registry, repository, tag: finalTag, digest, normalized })
}

/** Parses and normalizes a docker-style image reference: `debian` → `docker.io/library/debian:latest`. */
export const parseReference = Effect.fn("parseReference")(function* (input: string) {
  const parsed = parseReferenceEither(input)
  if (Either.isLeft(parsed)) return yield* new InvalidReference({ reference: input, reason: parsed.left })
  return parsed.right
})
