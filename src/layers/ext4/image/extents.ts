/**
 * Extent trees: up to 4 extents in the inode itself, else leaf blocks of 340 under an index in the
 * inode, else one more level of index blocks (1.8 million extents: far beyond any file here).
 */
import type { BlockRun } from "./allocator.js"
import { crc32cUpdate } from "./crc32c.js"
import { BLOCK_SIZE, divideUp } from "./format.js"

export interface Extent {
  readonly logical: number
  readonly length: number
  readonly start: number
}

/** ext4 extents cover at most 32768 initialized blocks. */
const MAX_EXTENT_BLOCKS = 32768
const IN_INODE = 4
const PER_BLOCK = (BLOCK_SIZE - 12 - 4) / 12
const MAGIC = 0xf30a

/** Extents over `runs`, back to back from block 0, or each at its `starts` block (a sparse file). */
export const extentsOf = (runs: ReadonlyArray<BlockRun>, starts?: ReadonlyArray<number>): Array<Extent> => {
  const extents: Array<Extent> = []
  let logical = 0
  for (let index = 0; index < runs.length; index++) {
    const run = runs[index]!
    if (starts !== undefined) logical = starts[index]!
    for (let done = 0; done < run.length; done += MAX_EXTENT_BLOCKS) {
      const length = Math.min(MAX_EXTENT_BLOCKS, run.length - done)
      const previous = extents.length === 0 ? undefined : extents[extents.length - 1]!
      if (
        previous !== undefined &&
        previous.start + previous.length === run.start + done &&
        previous.logical + previous.length === logical &&
        previous.length + length <= MAX_EXTENT_BLOCKS
      ) {
        extents[extents.length - 1] = {
          logical: previous.logical,
          length: previous.length + length,
          start: previous.start
        }
      } else {
        extents.push({ logical, length, start: run.start + done })
      }
      logical += length
    }
  }
  return extents
}

/** Blocks the tree needs outside the inode for `count` extents. */
export const treeBlocksFor = (count: number): number => {
  if (count <= IN_INODE) return 0
  const leaves = divideUp(count, PER_BLOCK)
  if (leaves <= IN_INODE) return leaves
  const indexes = divideUp(leaves, PER_BLOCK)
  if (indexes > IN_INODE) throw new Error(`a file of ${count} extents is beyond banger's extent trees`)
  return leaves + indexes
}

const header = (view: DataView, offset: number, entries: number, max: number, depth: number) => {
  view.setUint16(offset, MAGIC, true)
  view.setUint16(offset + 2, entries, true)
  view.setUint16(offset + 4, max, true)
  view.setUint16(offset + 6, depth, true)
}

const leafEntry = (view: DataView, offset: number, logical: number, length: number, start: number) => {
  view.setUint32(offset, logical, true)
  view.setUint16(offset + 4, length, true)
  view.setUint16(offset + 6, Math.floor(start / 2 ** 32), true)
  view.setUint32(offset + 8, start % 2 ** 32, true)
}

const indexEntry = (view: DataView, offset: number, logical: number, block: number) => {
  view.setUint32(offset, logical, true)
  view.setUint32(offset + 4, block % 2 ** 32, true)
  view.setUint16(offset + 8, Math.floor(block / 2 ** 32), true)
}

/**
 * Writes the in-inode extent root for `length` blocks from `start`, logical block 0 on, into
 * `root` (a view of the 60-byte i_block), when they fit in it (4 extents): what `buildExtentTree`
 * over `extentsOf` would write, without an object per file (a 500k-file tree plans and writes
 * each file's root once). False, with nothing written, when they need blocks of their own.
 */
export const writeContiguousRoot = (root: DataView, start: number, length: number): boolean => {
  const count = Math.ceil(length / MAX_EXTENT_BLOCKS)
  if (count > IN_INODE) return false
  header(root, 0, count, IN_INODE, 0)
  for (let index = 0; index < count; index++) {
    const done = index * MAX_EXTENT_BLOCKS
    leafEntry(root, 12 + index * 12, done, Math.min(MAX_EXTENT_BLOCKS, length - done), start + done)
  }
  return true
}

interface Node {
  readonly logical: number
  readonly block: number
}

/** Tree blocks to write, each with its checksum. */
export type ExtentTreeBlocks = ReadonlyArray<{ readonly block: number; readonly bytes: Uint8Array }>

/**
 * Writes the tree over `extents` into `root` (the inode's 60-byte i_block) and returns the blocks
 * outside it, which go at `treeBlocks` (as many as `treeBlocksFor` says: leaves first, then index
 * blocks). `seed` is the owning inode's checksum seed.
 */
export const buildExtentTree = (
  extents: ReadonlyArray<Extent>,
  treeBlocks: ReadonlyArray<number>,
  seed: number,
  root: Uint8Array
): ExtentTreeBlocks => {
  const rootView = new DataView(root.buffer, root.byteOffset, 60)
  const blocks: Array<{ block: number; bytes: Uint8Array }> = []
  const seal = (bytes: Uint8Array) => {
    const tail = 12 + PER_BLOCK * 12
    new DataView(bytes.buffer).setUint32(tail, crc32cUpdate(seed, bytes, 0, tail), true)
  }
  if (extents.length <= IN_INODE) {
    header(rootView, 0, extents.length, IN_INODE, 0)
    extents.forEach((extent, index) => {
      leafEntry(rootView, 12 + index * 12, extent.logical, extent.length, extent.start)
    })
    return blocks
  }
  const leafCount = divideUp(extents.length, PER_BLOCK)
  let level: Array<Node> = []
  for (let leaf = 0; leaf < leafCount; leaf++) {
    const slice = extents.slice(leaf * PER_BLOCK, (leaf + 1) * PER_BLOCK)
    const bytes = new Uint8Array(BLOCK_SIZE)
    const view = new DataView(bytes.buffer)
    header(view, 0, slice.length, PER_BLOCK, 0)
    slice.forEach((extent, index) => {
      leafEntry(view, 12 + index * 12, extent.logical, extent.length, extent.start)
    })
    seal(bytes)
    blocks.push({ block: treeBlocks[leaf]!, bytes })
    level.push({ logical: slice[0]!.logical, block: treeBlocks[leaf]! })
  }
  let depth = 1
  let next = leafCount
  if (level.length > IN_INODE) {
    const parents: Array<Node> = []
    for (let start = 0; start < level.length; start += PER_BLOCK) {
      const slice = level.slice(start, start + PER_BLOCK)
      const bytes = new Uint8Array(BLOCK_SIZE)
      const view = new DataView(bytes.buffer)
      header(view, 0, slice.length, PER_BLOCK, 1)
      slice.forEach((node, index) => {
        indexEntry(view, 12 + index * 12, node.logical, node.block)
      })
      seal(bytes)
      const block = treeBlocks[next++]!
      blocks.push({ block, bytes })
      parents.push({ logical: slice[0]!.logical, block })
    }
    level = parents
    depth = 2
  }
  header(rootView, 0, level.length, IN_INODE, depth)
  level.forEach((node, index) => {
    indexEntry(rootView, 12 + index * 12, node.logical, node.block)
  })
  return blocks
}
