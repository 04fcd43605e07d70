import { Effect } from "effect"
import { InvalidName } from "../../domain/errors.js"
import type { ImageReference } from "../../domain/reference.js"

/** Image and kernel names become directory names, so they are kept to one safe path segment. */
const nameLengthMax = 64
/** Used when a short digest has to stand in for a missing tag. */
const digestPrefixLength = 12
/** When a long repository name and a long tag must both be cut, the tag keeps at least this much. */
const suffixShareMin = 32

const isNameChar = (char: string) =>
  (char >= "a" && char <= "z") || (char >= "0" && char <= "9") || char === "." || char === "_" || char === "-"

/** Checks a user-chosen image or kernel name: `[a-z0-9][a-z0-9._-]{0,63}`, so never a path trick. */
export const validateImageName = Effect.fn("validateImageName")(function* (name: string) {
  const reject = (reason: string) => new InvalidName({ name, reason })
  if (name.length === 0) return yield* reject("name is empty")
  if (name === "." || name === "..") return yield* reject(`name cannot be "." or ".." (names become directory names)`)
  if (name.includes("/") || name.includes("\\")) {
    return yield* reject(`name cannot contain "/" or "\\" (names become directory names)`)
  }
  if (name.length > nameLengthMax)
    return yield* reject(`name is too long (${name.length} characters, max ${nameLengthMax})`)
  const upper = name.search(/[A-Z]/)
  if (upper !== -1) return yield* reject(`names must be lowercase (found "${name[upper]}" at position ${upper + 1})`)
  for (let i = 0; i < name.length; i++) {
    if (!isNameChar(name[i]!)) {
      return yield* reject(
        `invalid character ${JSON.stringify(name[i])} at position ${i + 1} (allowed: a-z, 0-9, ".", "_", "-")`
      )
    }
  }
  if (!/^[a-z0-9]/.test(name)) return yield* reject("name must start with a lowercase letter or digit")
  return name
})

const sanitize = (text: string): string => text.toLowerCase().replace(/[^a-z0-9._-]/g, "-")

/**
 * The name an image gets when the user picks none: last path component, "-", then the tag (or the
 * first 12 hex digits of the digest). Always passes `validateImageName`, even for hand-built references.
 */
export const defaultImageName = (ref: ImageReference): string => {
  let base = sanitize(ref.repository.split("/").pop() ?? "")
  const digestHex = ref.digest?.slice(ref.digest.indexOf(":") + 1)
  let suffix = sanitize(ref.tag ? ref.tag : digestHex ? digestHex.slice(0, digestPrefixLength) : "latest")
  const room = nameLengthMax - 1
  if (base.length + suffix.length > room) {
    // Cut the suffix only as far as needed, so different tags of one repository stay different names.
    suffix = suffix.slice(0, Math.max(room - base.length, suffixShareMin))
    base = base.slice(0, room - suffix.length)
  }
  const name = `${base}-${suffix}`.replace(/^[^a-z0-9]+/, "")
  return name.length > 0 ? name : "image"
}
