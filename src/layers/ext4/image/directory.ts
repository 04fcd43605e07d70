/**
 * Linear directories: entries packed in order into 4 KiB blocks, each ending in the 12-byte
 * checksum tail. The kernel and e2fsck read linear directories of any size; the kernel indexes a
 * directory itself when one grows in the guest.
 */
import { crc32cUpdate } from "./crc32c.js"
import { BLOCK_SIZE } from "./format.js"

export interface DirectoryEntry {
  readonly name: Uint8Array
  readonly inode: number
  /** ext4's file type byte: 1 file, 2 directory, 3 char, 4 block, 5 fifo, 7 symlink. */
  readonly fileType: number
}

const TAIL = 12
const USABLE = BLOCK_SIZE - TAIL
const recordLength = (nameLength: number) => (8 + nameLength + 3) & ~3

const scratch = new Uint8Array(BLOCK_SIZE)
const scratchView = new DataView(scratch.buffer)

const DOT = new Uint8Array([0x2e])
const DOTDOT = new Uint8Array([0x2e, 0x2e])

/** Number of blocks the directory takes. */
export const directoryBlocks = (entries: ReadonlyArray<DirectoryEntry>, minimum = 1): number => {
  let blocks = 1
  let used = recordLength(1) + recordLength(2)
  for (const entry of entries) {
    const length = recordLength(entry.name.length)
    if (used + length > USABLE) {
      blocks++
      used = 0
    }
    used += length
  }
  return Math.max(blocks, minimum)
}

/**
 * The directory's blocks, checksummed with the directory inode's `seed`, each handed to `emit` with
 * its index as soon as it is complete; `blockCount` as `directoryBlocks` gave (more leaves empty
 * blocks at the end, as lost+found has). The blocks are one scratch array, reused: `emit` copies
 * what it keeps (a new array per block was ~40 MiB of garbage at the end of a 500k-file plan).
 */
export const encodeDirectory = (
  self: number,
  parent: number,
  entries: ReadonlyArray<DirectoryEntry>,
  blockCount: number,
  seed: number,
  emit: (index: number, block: Uint8Array) => void
): void => {
  const block = scratch
  const view = scratchView
  block.fill(0)
  let emitted = 0
  let used = 0
  let last = -1
  const closeBlock = () => {
    if (last < 0) {
      // An empty block: one unused entry spanning it.
      view.setUint32(0, 0, true)
      view.setUint16(4, USABLE, true)
    } else {
      view.setUint16(last + 4, USABLE - last, true)
    }
    view.setUint16(USABLE + 4, TAIL, true)
    view.setUint8(USABLE + 7, 0xde)
    view.setUint32(USABLE + 8, crc32cUpdate(seed, block, 0, USABLE), true)
    emit(emitted++, block)
    block.fill(0)
    used = 0
    last = -1
  }
  const add = (entry: DirectoryEntry) => {
    const length = recordLength(entry.name.length)
    if (used + length > USABLE) closeBlock()
    view.setUint32(used, entry.inode, true)
    view.setUint16(used + 4, length, true)
    view.setUint8(used + 6, entry.name.length)
    view.setUint8(used + 7, entry.fileType)
    block.set(entry.name, used + 8)
    last = used
    used += length
  }
  add({ name: DOT, inode: self, fileType: 2 })
  add({ name: DOTDOT, inode: parent, fileType: 2 })
  for (const entry of entries) add(entry)
  closeBlock()
  while (emitted < blockCount) closeBlock()
}
