/**
 * Block allocation for an image being written. Blocks are handed out from a bump pointer that steps
 * over the start of every backup group (its superblock and descriptor table copies go there), and
 * from runs freed by files a later layer removed. Allocation happens while the layers stream in,
 * before the filesystem's size is known, so the reserve kept per backup group is the descriptor
 * table's largest possible size (see `reservedBlocksFor`).
 */
import { BLOCKS_PER_GROUP, DESCS_PER_BLOCK, divideUp, hasSuperblockBackup } from "./format.js"

export interface BlockRun {
  readonly start: number
  readonly length: number
}

/** Without a requested size, room for the descriptors of 1 TiB (8192 groups): 129 blocks a group. */
const DEFAULT_MAX_GROUPS = 8192

/** Blocks kept at the start of each backup group: a superblock and the largest descriptor table. */
export const reservedBlocksFor = (maxBlocks: number | undefined): number =>
  1 + divideUp(maxBlocks === undefined ? DEFAULT_MAX_GROUPS : divideUp(maxBlocks, BLOCKS_PER_GROUP), DESCS_PER_BLOCK)

/** The first block at or after `block` outside every backup group's reserve. */
const skipReserve = (block: number, reserve: number) => {
  const group = Math.floor(block / BLOCKS_PER_GROUP)
  const offset = block - group * BLOCKS_PER_GROUP
  return offset < reserve && hasSuperblockBackup(group) ? group * BLOCKS_PER_GROUP + reserve : block
}

/** Where the run starting at `start` must stop: the next backup group's reserve. */
const nextReserve = (start: number) => {
  let group = Math.floor(start / BLOCKS_PER_GROUP) + 1
  while (!hasSuperblockBackup(group)) group++
  return group * BLOCKS_PER_GROUP
}

/** `count` blocks bumped from `next`: the runs, split only around reserves, and the new pointer. */
export const bump = (next: number, count: number, reserve: number) => {
  const runs: Array<BlockRun> = []
  let position = next
  let left = count
  while (left > 0) {
    position = skipReserve(position, reserve)
    const length = Math.min(left, nextReserve(position) - position)
    runs.push({ start: position, length })
    position += length
    left -= length
  }
  return { runs, next: position }
}

/** `count` contiguous blocks bumped from `next` (an inode table), moving past a reserve in the way. */
export const bumpContiguous = (next: number, count: number, reserve: number) => {
  let start = skipReserve(next, reserve)
  while (start + count > nextReserve(start)) start = skipReserve(nextReserve(start), reserve)
  return { run: { start, length: count }, next: start + count }
}

export class BlockAllocator {
  private used = new Uint8Array(1 << 16)
  private readonly freed: Array<BlockRun> = []
  /** Every block at or past this one is free and has never been written. */
  next: number

  constructor(readonly reserve: number) {
    this.next = reserve
  }

  private setBits(run: BlockRun, value: boolean) {
    const end = run.start + run.length
    if (end > this.used.length * 8) {
      let size = this.used.length
      while (size * 8 < end) size *= 2
      const grown = new Uint8Array(size)
      grown.set(this.used)
      this.used = grown
    }
    for (let block = run.start; block < end; block++) {
      if (value) this.used[block >> 3]! |= 1 << (block & 7)
      else this.used[block >> 3]! &= ~(1 << (block & 7))
    }
  }

  mark(run: BlockRun) {
    this.setBits(run, true)
  }

  /** `count` blocks: all of a freed run that holds them when there is one, else from the pointer. */
  allocate(count: number): ReadonlyArray<BlockRun> {
    if (count === 0) return []
    let index = -1
    for (let at = 0; at < this.freed.length; at++) {
      if (this.freed[at]!.length >= count) {
        index = at
        break
      }
    }
    let runs: ReadonlyArray<BlockRun>
    if (index >= 0) {
      const run = this.freed[index]!
      runs = [{ start: run.start, length: count }]
      if (run.length === count) this.freed.splice(index, 1)
      else this.freed[index] = { start: run.start + count, length: run.length - count }
    } else {
      const bumped = bump(this.next, count, this.reserve)
      runs = bumped.runs
      this.next = bumped.next
    }
    for (const run of runs) this.mark(run)
    return runs
  }

  free(runs: ReadonlyArray<BlockRun>) {
    for (const run of runs) {
      this.setBits(run, false)
      this.freed.push(run)
    }
  }

  /** The block bitmap of one group: a bit per block, those past `totalBlocks` set (they do not exist). */
  groupBitmap(group: number, totalBlocks: number): Uint8Array {
    const bitmap = new Uint8Array(BLOCKS_PER_GROUP / 8)
    const first = group * BLOCKS_PER_GROUP
    const byteStart = first >> 3
    bitmap.set(this.used.subarray(byteStart, Math.min(byteStart + bitmap.length, this.used.length)))
    for (let block = Math.max(totalBlocks, first); block < first + BLOCKS_PER_GROUP; block++) {
      const bit = block - first
      bitmap[bit >> 3]! |= 1 << (bit & 7)
    }
    return bitmap
  }
}
