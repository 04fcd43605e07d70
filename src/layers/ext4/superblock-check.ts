/**
 * Recognizes an ext2/3/4 filesystem from its first bytes, the way the kernel would before mounting
 * it: the primary superblock's magic, a block size and count that make sense, and the file large
 * enough for them (a truncated copy is refused here, not at boot).
 */
import { crc32cUpdate } from "./image/crc32c.js"
import { INCOMPAT_64BIT, RO_COMPAT_METADATA_CSUM } from "./image/format.js"
import { SUPERBLOCK_SIZE } from "./image/superblock.js"

/** The primary superblock sits 1024 bytes in, whatever the block size. */
export const SUPERBLOCK_OFFSET = 1024
/** How much of a file `checkExt4Superblock` needs. */
export const SUPERBLOCK_END = SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE
const EXT4_MAGIC = 0xef53
/** 1 KiB to 64 KiB, the block sizes ext4 supports. */
const LOG_BLOCK_SIZE_MAX = 6
const CHECKSUM_TYPE_CRC32C = 1

export interface Ext4Geometry {
  readonly blockSize: number
  readonly blocks: number
  /** blocks × blockSize: what the filesystem covers. */
  readonly bytes: number
}

/**
 * The filesystem's geometry, or why `head` (the file's first `SUPERBLOCK_END` bytes, fewer if the
 * file is shorter) of a `fileSize`-byte file is not a usable ext4.
 */
export const checkExt4Superblock = (
  head: Uint8Array,
  fileSize: number
): { readonly geometry: Ext4Geometry } | { readonly problem: string } => {
  if (fileSize < SUPERBLOCK_END || head.length < SUPERBLOCK_END) {
    return { problem: `not an ext4 filesystem: ${fileSize} bytes is too small to hold a superblock` }
  }
  const sb = new DataView(head.buffer, head.byteOffset + SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)
  const magic = sb.getUint16(0x38, true)
  if (magic !== EXT4_MAGIC) {
    const found = `0x${magic.toString(16).padStart(4, "0")}`
    return { problem: `not an ext4 filesystem: no superblock magic at byte 1080 (found ${found}, expected 0xef53)` }
  }
  const logBlockSize = sb.getUint32(0x18, true)
  if (logBlockSize > LOG_BLOCK_SIZE_MAX) {
    return { problem: `corrupt ext4 superblock: block size 2^${10 + logBlockSize} is out of range` }
  }
  const blockSize = 1024 << logBlockSize
  const incompat = sb.getUint32(0x60, true)
  const high = incompat & INCOMPAT_64BIT ? sb.getUint32(0x150, true) : 0
  const blocks = high * 2 ** 32 + sb.getUint32(0x04, true)
  const firstDataBlock = sb.getUint32(0x14, true)
  if (
    blocks === 0 ||
    sb.getUint32(0x00, true) === 0 ||
    sb.getUint32(0x20, true) === 0 ||
    sb.getUint32(0x28, true) === 0 ||
    firstDataBlock !== (blockSize === 1024 ? 1 : 0)
  ) {
    return { problem: "corrupt ext4 superblock: its block, inode or group counts are inconsistent" }
  }
  const roCompat = sb.getUint32(0x64, true)
  if (roCompat & RO_COMPAT_METADATA_CSUM && sb.getUint8(0x175) === CHECKSUM_TYPE_CRC32C) {
    const bytes = head.subarray(SUPERBLOCK_OFFSET, SUPERBLOCK_END)
    if (crc32cUpdate(0xffffffff, bytes, 0, 0x3fc) !== sb.getUint32(0x3fc, true)) {
      return { problem: "corrupt ext4 superblock: its checksum does not match" }
    }
  }
  const bytes = blocks * blockSize
  if (bytes > fileSize) {
    return {
      problem: `truncated ext4 filesystem: its superblock says ${blocks} blocks of ${blockSize} bytes (${bytes} bytes) but the file has ${fileSize}`
    }
  }
  return { geometry: { blockSize, blocks, bytes } }
}
