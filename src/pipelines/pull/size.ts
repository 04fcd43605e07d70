import { Effect } from "effect"
import { InvalidSize, SizeTooSmall } from "../../domain/errors.js"
import type { TreeEntry } from "../../domain/tree.js"
import {
  BLOCK_SIZE,
  defaultInodes,
  extentTreeBlocks,
  FIRST_INODE,
  INODE_SIZE,
  type Layout,
  layout
} from "../../layers/ext4/geometry.js"

const UNITS: Record<string, number> = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }
const GiB = 2 ** 30

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

/** What a tree occupies in an ext4 image beyond the per-size layout: inodes and data blocks. */
export interface TreeUsage {
  /** Inodes in use once built, counting the 11 reserved ones (lost+found among them). */
  readonly inodes: number
  /** Blocks for contents, directories, long symlinks, xattr blocks and extent trees. */
  readonly blocks: number
}

const utf8Length = (text: string) => Buffer.byteLength(text, "utf8")
const parentOf = (path: string) => path.slice(0, Math.max(path.lastIndexOf("/"), 0))

/** A directory entry: 8-byte header and the name, padded to 4 bytes. */
const direntBytes = (name: string) => 8 + Math.ceil(utf8Length(name) / 4) * 4

// Each block keeps 12 bytes for its checksum tail, and first fit can strand up to one maximal
// entry (8 + 256 bytes) at the end of each full block.
const DIR_BLOCK_USABLE = BLOCK_SIZE - 12 - 264

const directoryBlocks = (bytes: number) => {
  const blocks = Math.floor(bytes / DIR_BLOCK_USABLE) + 1
  // mkfs grows directories a block at a time between file data, so each block may be an extent.
  return blocks + extentTreeBlocks(blocks)
}

/** The shortest xattr name as ext4 stores it: known prefixes become an index byte. */
const storedNameLength = (name: string) => {
  for (const prefix of ["system.posix_acl_access", "system.posix_acl_default", "system.richacl"]) {
    if (name === prefix) return 0
  }
  for (const prefix of ["gnu.", "security.", "trusted.", "system.", "user."]) {
    if (name.startsWith(prefix)) return utf8Length(name) - prefix.length
  }
  return utf8Length(name)
}

/** Space for xattrs inside a 256-byte inode: after the 128-byte core, 32 extra bytes, a header and end marker. */
const IN_INODE_XATTR_BYTES = INODE_SIZE - 128 - 32 - 8

const xattrBlocks = (xattrs: TreeEntry["xattrs"]) => {
  if (xattrs.length === 0) return 0
  let bytes = 0
  for (const [name, value] of xattrs) {
    bytes += Math.ceil((16 + storedNameLength(name)) / 4) * 4 + Math.ceil(value.length / 4) * 4
  }
  return bytes <= IN_INODE_XATTR_BYTES ? 0 : 1
}

const fileBlocks = (size: number) => {
  const blocks = Math.ceil(size / BLOCK_SIZE)
  // Extents hold up to 32768 blocks; group metadata and the journal can split one more each time.
  const extents = 2 * Math.ceil(blocks / 32768) + 1
  return blocks + extentTreeBlocks(extents)
}

export const treeUsage = (entries: ReadonlyArray<TreeEntry>): TreeUsage => {
  const dirBytes = new Map<string, number>()
  const hasLostFound = entries.some((entry) => entry.path === "lost+found" && entry.type === "directory")
  let inodes = FIRST_INODE
  let blocks = 0
  for (const entry of entries) {
    if (entry.type === "directory") dirBytes.set(entry.path, (dirBytes.get(entry.path) ?? 0) + 24)
    if (entry.path !== "") {
      const parent = parentOf(entry.path)
      dirBytes.set(parent, (dirBytes.get(parent) ?? 0) + direntBytes(entry.path.slice(entry.path.lastIndexOf("/") + 1)))
    }
    if (entry.hardlinkTo !== undefined) {
      // mkfs -d gives a hard-linked symlink's later names inodes of their own until they are relinked.
      if (entry.type === "symlink") {
        inodes++
        if (utf8Length(entry.linkTarget ?? "") >= 60) blocks += 1
      }
      continue
    }
    if (entry.path !== "" && !(entry.path === "lost+found" && entry.type === "directory")) inodes++
    if (entry.type === "file") blocks += fileBlocks(entry.size)
    if (entry.type === "symlink" && utf8Length(entry.linkTarget ?? "") >= 60) blocks += 1
    blocks += xattrBlocks(entry.xattrs)
  }
  if (!hasLostFound) {
    dirBytes.set("", (dirBytes.get("") ?? 0) + direntBytes("lost+found"))
    blocks += 4
  }
  for (const [path, bytes] of dirBytes) {
    const dirBlocks = directoryBlocks(bytes)
    // mkfs makes lost+found 4 blocks long before copying anything into it.
    blocks += path === "lost+found" && hasLostFound ? Math.max(4, dirBlocks) : dirBlocks
  }
  return { inodes, blocks }
}

/**
 * Inodes to ask mkfs for: its default of one per 16 KiB, or a quarter more than the tree uses when
 * that is more (trees of many small files would otherwise leave the guest without free inodes).
 */
export const inodesFor = (sizeBytes: number, usage: TreeUsage) =>
  Math.max(defaultInodes(sizeBytes), Math.ceil(usage.inodes * 1.25))

/** Blocks still missing for the tree at this size (0 when it fits), or undefined if mkfs would refuse the size. */
const shortfall = (sizeBytes: number, usage: TreeUsage): number | undefined => {
  const geometry: Layout | undefined = layout(sizeBytes, inodesFor(sizeBytes, usage))
  if (geometry === undefined || geometry.inodes < usage.inodes) return undefined
  const journal = geometry.journalBlocks + extentTreeBlocks(2 * Math.ceil(geometry.journalBlocks / 32768) + 1)
  // The resize inode keeps its indirect block even when no GDT blocks are reserved.
  const resizeInode = 1
  const afterMetadata = geometry.blocks - geometry.metadataBlocks - resizeInode - 5
  // mkfs refuses a journal larger than half of what is free when it adds it.
  if (geometry.journalBlocks > afterMetadata / 2) return undefined
  return Math.max(0, usage.blocks - (geometry.blocks - geometry.metadataBlocks - journal - resizeInode))
}

/** The smallest size of at least `from` bytes (rounded up to 4 KiB) that holds the tree. */
const firstFit = (from: number, usage: TreeUsage): number => {
  let size = Math.ceil(Math.max(from, BLOCK_SIZE) / BLOCK_SIZE) * BLOCK_SIZE
  for (;;) {
    const missing = shortfall(size, usage)
    if (missing === 0) return size
    // Growing by d blocks frees at most d blocks, so stepping by the shortfall never skips a fit.
    const step = missing === undefined ? Math.max(16, Math.ceil(size / BLOCK_SIZE / 64)) : missing
    size += step * BLOCK_SIZE
    if (!Number.isSafeInteger(size)) return size
  }
}

/** Bytes an ext4 image needs to hold the tree: contents, inodes, directories, journal and metadata. */
export const requiredBytes = (entries: ReadonlyArray<TreeEntry>): number => {
  const usage = treeUsage(entries)
  return firstFit(usage.blocks * BLOCK_SIZE, usage)
}

export interface ImageSize {
  readonly sizeBytes: number
  readonly inodes: number
}

/**
 * The image size and inode count to build with: `requested` when the tree fits in it, else
 * SizeTooSmall (before any mkfs runs); by default a quarter more than required and at least 1 GiB.
 */
export const chooseImageSize = (options: {
  readonly entries: ReadonlyArray<TreeEntry>
  readonly requested?: number | undefined
}): Effect.Effect<ImageSize, SizeTooSmall> =>
  Effect.suspend(() => {
    const usage = treeUsage(options.entries)
    const required = firstFit(usage.blocks * BLOCK_SIZE, usage)
    const { requested } = options
    if (requested === undefined) {
      const sizeBytes = firstFit(Math.max(Math.ceil(required * 1.25), GiB), usage)
      return Effect.succeed({ sizeBytes, inodes: inodesFor(sizeBytes, usage) })
    }
    if (requested < required) {
      return Effect.fail(
        new SizeTooSmall({
          requestedBytes: requested,
          requiredBytes: required,
          reason: `the image holds ${options.entries.length} entries needing ${usage.blocks} blocks and ${usage.inodes} inodes`
        })
      )
    }
    if (shortfall(requested, usage) !== 0) {
      // Layouts are not monotonic: a size just past a block-group boundary can hold less than a
      // smaller one, because the new group brings its own metadata.
      return Effect.fail(
        new SizeTooSmall({
          requestedBytes: requested,
          requiredBytes: firstFit(requested, usage),
          reason: "at this size a new ext4 block group takes more space than it adds"
        })
      )
    }
    return Effect.succeed({ sizeBytes: requested, inodes: inodesFor(requested, usage) })
  })
