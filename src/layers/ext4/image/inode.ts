/** One 256-byte inode as ext4 lays it out, sealed with its checksum. */
import { crc32cUpdate, crc32cUpdateU32 } from "./crc32c.js"
import { EXTRA_ISIZE, INODE_SIZE } from "./format.js"

export interface InodeFields {
  /** Type and permission bits. */
  readonly mode: number
  readonly uid: number
  readonly gid: number
  readonly size: number
  readonly links: number
  /** Seconds; atime, ctime and crtime follow it: nothing else is known, and it keeps builds reproducible. */
  readonly time: number
  readonly flags: number
  /** The 60-byte i_block: extent root, fast symlink target or device number. */
  readonly iBlock: Uint8Array
  /** Blocks this inode owns (data, extent tree, xattr block), counted in 512-byte sectors as i_blocks is. */
  readonly blocks: number
  /** The xattr block, or 0. */
  readonly xattrBlock: number
  /** In-inode xattrs: the bytes from the end of the extra fields to the end of the inode, or none. */
  readonly inlineXattrs: Uint8Array | undefined
}

/** The checksum seed of an inode's own metadata (inode, extent and directory blocks). */
export const inodeSeed = (fsSeed: number, ino: number, generation = 0) =>
  crc32cUpdateU32(crc32cUpdateU32(fsSeed, ino), generation)

const MIN_TIME = -(2 ** 31)
// Two epoch bits extend the signed 32-bit seconds to the year 2446.
const MAX_TIME = 2 ** 31 - 1 + 3 * 2 ** 32

const clampTime = (seconds: number) => Math.min(Math.max(Math.trunc(seconds), MIN_TIME), MAX_TIME)
/** The low 32 bits (signed, stored unsigned) of clamped seconds. */
const timeLow = (clamped: number) => (clamped | 0) >>> 0
/** The epoch bits of the `_extra` field for clamped seconds. */
const timeEpoch = (clamped: number) => ((clamped - (clamped | 0)) / 2 ** 32) & 3

/** Low 32 bits (signed) and the epoch bits of the `_extra` field. */
export const encodeTime = (seconds: number): readonly [low: number, extra: number] => {
  const clamped = clampTime(seconds)
  return [timeLow(clamped), timeEpoch(clamped)]
}

export const INLINE_XATTR_OFFSET = 128 + EXTRA_ISIZE

/**
 * Writes inode `ino` at byte `at` of `table` (through `view`, a DataView of all of `table`). One
 * view for the whole inode table, no array or tuple per call: this runs for every inode of the
 * image (500k-file tree: 750 ms with a DataView, a subarray and four small arrays per inode).
 */
export const encodeInode = (
  table: Uint8Array,
  view: DataView,
  at: number,
  ino: number,
  fields: InodeFields,
  fsSeed: number
) => {
  table.fill(0, at, at + INODE_SIZE)
  const clamped = clampTime(fields.time)
  const time = timeLow(clamped)
  const timeExtra = timeEpoch(clamped)
  const sectors = fields.blocks
  view.setUint16(at + 0x00, fields.mode, true)
  view.setUint16(at + 0x02, fields.uid & 0xffff, true)
  view.setUint32(at + 0x04, fields.size % 2 ** 32, true)
  view.setUint32(at + 0x08, time, true)
  view.setUint32(at + 0x0c, time, true)
  view.setUint32(at + 0x10, time, true)
  view.setUint16(at + 0x18, fields.gid & 0xffff, true)
  view.setUint16(at + 0x1a, fields.links, true)
  view.setUint32(at + 0x1c, sectors % 2 ** 32, true)
  view.setUint32(at + 0x20, fields.flags, true)
  table.set(fields.iBlock, at + 0x28)
  view.setUint32(at + 0x68, fields.xattrBlock % 2 ** 32, true)
  view.setUint32(at + 0x6c, Math.floor(fields.size / 2 ** 32), true)
  view.setUint16(at + 0x74, Math.floor(sectors / 2 ** 32), true)
  view.setUint16(at + 0x76, Math.floor(fields.xattrBlock / 2 ** 32), true)
  view.setUint16(at + 0x78, fields.uid >>> 16, true)
  view.setUint16(at + 0x7a, fields.gid >>> 16, true)
  view.setUint16(at + 0x80, EXTRA_ISIZE, true)
  view.setUint32(at + 0x84, timeExtra, true)
  view.setUint32(at + 0x88, timeExtra, true)
  view.setUint32(at + 0x8c, timeExtra, true)
  view.setUint32(at + 0x90, time, true)
  view.setUint32(at + 0x94, timeExtra, true)
  if (fields.inlineXattrs !== undefined) table.set(fields.inlineXattrs, at + INLINE_XATTR_OFFSET)
  const csum = crc32cUpdate(inodeSeed(fsSeed, ino), table, at, at + INODE_SIZE)
  view.setUint16(at + 0x7c, csum & 0xffff, true)
  view.setUint16(at + 0x82, csum >>> 16, true)
}
