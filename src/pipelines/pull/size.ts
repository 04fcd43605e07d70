import { Effect } from "effect"
import { InvalidSize, SizeTooSmall } from "../../domain/errors.js"
import type { PlannedImage } from "../../layers/ext4/ext4-tools.js"

const UNITS: Record<string, number> = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }
const GiB = 2 ** 30
const BLOCK_SIZE = 4096

const invalid = (input: string, reason: string) => Effect.fail(new InvalidSize({ input, reason }))

/**
 * `2G`, `1500M`, `512K`, `1T` or plain bytes; an optional `B` or `iB` suffix; binary units whatever
 * the spelling (`2GB` is 2 GiB, as with dd and truncate); case and surrounding spaces do not matter.
 * Fractions are refused rather than rounded: "1.5G" names no exact byte count in general, and the
 * reason suggests the whole number in the next unit down.
 */
export const parseSize = (input: string): Effect.Effect<number, InvalidSize> => {
  const text = input.trim()
  if (text === "") return invalid(input, "empty size")
  const match = /^([+-]?)(\d+)(?:\.(\d+))?\s*([kmgt]?)(i?b)?$/i.exec(text)
  if (match === null) return invalid(input, "expected a number with an optional K, M, G or T suffix, e.g. 2G")
  const [, sign, whole, fraction, unitLetter = "", suffix] = match
  const unit = unitLetter.toLowerCase()
  if (suffix !== undefined && suffix.toLowerCase() === "ib" && unit === "") {
    return invalid(input, "iB needs a unit before it, e.g. 2GiB")
  }
  if (sign === "-") return invalid(input, "size cannot be negative")
  if (fraction !== undefined) {
    const units = ["", "k", "m", "g", "t"]
    const smaller = units[units.indexOf(unit) - 1]
    const exact = Number(`${whole}.${fraction}`) * 1024
    const hint =
      smaller !== undefined && Number.isInteger(exact) ? `; use ${exact}${smaller.toUpperCase() || " bytes"}` : ""
    return invalid(input, `fractions are not supported${hint}`)
  }
  const bytes = Number(whole) * UNITS[unit]!
  if (bytes === 0) return invalid(input, "size must be greater than zero")
  if (!Number.isSafeInteger(bytes)) return invalid(input, "size is too large")
  return Effect.succeed(bytes)
}

export interface ImageSize {
  readonly sizeBytes: number
}

/**
 * The image size: `requested` when the tree fits in it, else SizeTooSmall (before any metadata is
 * written); by default a quarter more than required and at least 1 GiB.
 */
export const chooseImageSize = (options: {
  readonly image: PlannedImage
  readonly entryCount: number
  readonly requested?: number | undefined
}): Effect.Effect<ImageSize, SizeTooSmall> =>
  Effect.suspend(() => {
    const { image, requested } = options
    const required = image.requiredBytes
    if (requested === undefined) {
      let sizeBytes = Math.ceil(Math.max(required * 1.25, GiB) / BLOCK_SIZE) * BLOCK_SIZE
      // Layouts are not monotonic: a size just past a block-group boundary can hold less than a
      // smaller one, because the new group brings its own metadata.
      while (image.misfit(sizeBytes) !== undefined) sizeBytes += 256 * BLOCK_SIZE
      return Effect.succeed({ sizeBytes })
    }
    const misfit = image.misfit(requested)
    if (misfit === undefined) return Effect.succeed({ sizeBytes: requested })
    return Effect.fail(
      new SizeTooSmall({
        requestedBytes: requested,
        requiredBytes: Math.max(required, requested + BLOCK_SIZE),
        reason: `the image holds ${options.entryCount} entries in ${image.usedInodes} inodes, and ${misfit}`
      })
    )
  })
