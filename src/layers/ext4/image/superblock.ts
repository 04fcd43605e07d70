/** The superblock and group descriptors, each sealed with its checksum. */
import { crc32cUpdate, crc32cUpdateU32 } from "./crc32c.js"
import {
  BLOCKS_PER_GROUP,
  COMPAT_DIR_INDEX,
  COMPAT_EXT_ATTR,
  COMPAT_HAS_JOURNAL,
  DESC_SIZE,
  EXTRA_ISIZE,
  FIRST_INODE,
  INCOMPAT_64BIT,
  INCOMPAT_EXTENTS,
  INCOMPAT_FILETYPE,
  INCOMPAT_FLEX_BG,
  INODE_SIZE,
  JOURNAL_INODE,
  LOG_GROUPS_PER_FLEX,
  RO_COMPAT_DIR_NLINK,
  RO_COMPAT_EXTRA_ISIZE,
  RO_COMPAT_HUGE_FILE,
  RO_COMPAT_LARGE_FILE,
  RO_COMPAT_METADATA_CSUM,
  RO_COMPAT_SPARSE_SUPER
} from "./format.js"

export const SUPERBLOCK_SIZE = 1024

export interface SuperblockFields {
  readonly blocks: number
  readonly inodes: number
  readonly inodesPerGroup: number
  readonly freeBlocks: number
  readonly freeInodes: number
  readonly reservedBlocks: number
  readonly timestamp: number
  readonly uuid: Uint8Array
  readonly label: Uint8Array
  readonly hashSeed: Uint8Array
  /** With a journal: i_block of its inode and its size, backed up in the superblock. */
  readonly journal: { readonly iBlock: Uint8Array; readonly bytes: number } | undefined
}

const set64 = (view: DataView, low: number, high: number, value: number) => {
  view.setUint32(low, value % 2 ** 32, true)
  view.setUint32(high, Math.floor(value / 2 ** 32), true)
}

/** The superblock as stored in `group` (0: the primary; others: a backup copy). */
export const encodeSuperblock = (fields: SuperblockFields, group: number): Uint8Array => {
  const bytes = new Uint8Array(SUPERBLOCK_SIZE)
  const view = new DataView(bytes.buffer)
  view.setUint32(0x00, fields.inodes, true)
  set64(view, 0x04, 0x150, fields.blocks)
  set64(view, 0x08, 0x154, fields.reservedBlocks)
  set64(view, 0x0c, 0x158, fields.freeBlocks)
  view.setUint32(0x10, fields.freeInodes, true)
  view.setUint32(0x14, 0, true)
  view.setUint32(0x18, 2, true)
  view.setUint32(0x1c, 2, true)
  view.setUint32(0x20, BLOCKS_PER_GROUP, true)
  view.setUint32(0x24, BLOCKS_PER_GROUP, true)
  view.setUint32(0x28, fields.inodesPerGroup, true)
  view.setUint32(0x30, fields.timestamp, true)
  view.setUint16(0x36, 0xffff, true)
  view.setUint16(0x38, 0xef53, true)
  view.setUint16(0x3a, 1, true)
  view.setUint16(0x3c, 1, true)
  view.setUint32(0x40, fields.timestamp, true)
  view.setUint32(0x4c, 1, true)
  view.setUint32(0x54, FIRST_INODE, true)
  view.setUint16(0x58, INODE_SIZE, true)
  view.setUint16(0x5a, group, true)
  const journal = fields.journal !== undefined
  view.setUint32(0x5c, (journal ? COMPAT_HAS_JOURNAL : 0) | COMPAT_EXT_ATTR | COMPAT_DIR_INDEX, true)
  view.setUint32(0x60, INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG, true)
  view.setUint32(
    0x64,
    RO_COMPAT_SPARSE_SUPER |
      RO_COMPAT_LARGE_FILE |
      RO_COMPAT_HUGE_FILE |
      RO_COMPAT_DIR_NLINK |
      RO_COMPAT_EXTRA_ISIZE |
      RO_COMPAT_METADATA_CSUM,
    true
  )
  bytes.set(fields.uuid, 0x68)
  bytes.set(fields.label.subarray(0, 16), 0x78)
  if (journal) view.setUint32(0xe0, JOURNAL_INODE, true)
  bytes.set(fields.hashSeed, 0xec)
  // half_md4, and hashes computed on signed chars, as x86 kernels and e2fsprogs do.
  view.setUint8(0xfc, 1)
  view.setUint16(0xfe, DESC_SIZE, true)
  // user_xattr and acl by default.
  view.setUint32(0x100, 0x0004 | 0x0008, true)
  view.setUint32(0x108, fields.timestamp, true)
  if (fields.journal !== undefined) {
    view.setUint8(0xfd, 1)
    bytes.set(fields.journal.iBlock, 0x10c)
    view.setUint32(0x10c + 15 * 4, Math.floor(fields.journal.bytes / 2 ** 32), true)
    view.setUint32(0x10c + 16 * 4, fields.journal.bytes % 2 ** 32, true)
  }
  view.setUint16(0x15c, EXTRA_ISIZE, true)
  view.setUint16(0x15e, EXTRA_ISIZE, true)
  view.setUint32(0x160, 1, true)
  view.setUint8(0x174, LOG_GROUPS_PER_FLEX)
  view.setUint8(0x175, 1)
  view.setUint32(0x3fc, crc32cUpdate(0xffffffff, bytes, 0, 0x3fc), true)
  return bytes
}

export interface GroupDescriptor {
  readonly blockBitmap: number
  readonly inodeBitmap: number
  readonly inodeTable: number
  readonly freeBlocks: number
  readonly freeInodes: number
  readonly usedDirs: number
  readonly flags: number
  readonly blockBitmapCsum: number
  readonly inodeBitmapCsum: number
  readonly itableUnused: number
}

export const encodeDescriptor = (target: Uint8Array, group: number, desc: GroupDescriptor, fsSeed: number) => {
  target.fill(0, 0, DESC_SIZE)
  const view = new DataView(target.buffer, target.byteOffset, DESC_SIZE)
  const split = (low: number, high: number, value: number, bits: 16 | 32) => {
    const base = 2 ** bits
    if (bits === 32) {
      view.setUint32(low, value % base, true)
      view.setUint32(high, Math.floor(value / base), true)
    } else {
      view.setUint16(low, value % base, true)
      view.setUint16(high, Math.floor(value / base), true)
    }
  }
  split(0x00, 0x20, desc.blockBitmap, 32)
  split(0x04, 0x24, desc.inodeBitmap, 32)
  split(0x08, 0x28, desc.inodeTable, 32)
  split(0x0c, 0x2c, desc.freeBlocks, 16)
  split(0x0e, 0x2e, desc.freeInodes, 16)
  split(0x10, 0x30, desc.usedDirs, 16)
  view.setUint16(0x12, desc.flags, true)
  split(0x18, 0x38, desc.blockBitmapCsum, 16)
  split(0x1a, 0x3a, desc.inodeBitmapCsum, 16)
  split(0x1c, 0x32, desc.itableUnused, 16)
  const crc = crc32cUpdate(crc32cUpdateU32(fsSeed, group), target, 0, DESC_SIZE)
  view.setUint16(0x1e, crc & 0xffff, true)
}
