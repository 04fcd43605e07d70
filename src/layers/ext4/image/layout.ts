/**
 * The filesystem's shape for a given size: groups, inodes per group, journal, and where its
 * metadata lands. Metadata goes after everything the tree needs (flex_bg lets bitmaps and inode
 * tables live anywhere), in one fixed order, so `metadataEnd` predicts exactly what `writeImage`
 * then allocates.
 */
import { type BlockRun, bump, bumpContiguous } from "./allocator.js"
import { extentsOf, treeBlocksFor } from "./extents.js"
import {
  BLOCK_SIZE,
  BLOCKS_PER_GROUP,
  DESCS_PER_BLOCK,
  defaultJournalBlocks,
  divideUp,
  INODE_RATIO,
  INODES_PER_BLOCK,
  MAX_INODES_PER_GROUP
} from "./format.js"

export interface Geometry {
  readonly blocks: number
  readonly groups: number
  readonly inodesPerGroup: number
  readonly inodes: number
  readonly journalBlocks: number
  readonly descriptorBlocks: number
  readonly inodeTableBlocks: number
}

/** A trailing group smaller than this is left out, as mkfs does: it would hold little but its own metadata. */
const MIN_LAST_GROUP = 64

export const defaultInodesFor = (blocks: number) => Math.floor((blocks * BLOCK_SIZE) / INODE_RATIO)

/**
 * The geometry of a filesystem of `blocks` with at least `inodes` inodes where it can (fewer when
 * the groups cannot hold them), or the reason there is none.
 */
export const geometryFor = (blocks: number, inodes: number, reserve: number): Geometry | string => {
  let total = Math.floor(blocks)
  let groups = divideUp(total, BLOCKS_PER_GROUP)
  const last = total - (groups - 1) * BLOCKS_PER_GROUP
  if (groups > 1 && last < reserve + MIN_LAST_GROUP) {
    groups--
    total = groups * BLOCKS_PER_GROUP
  }
  if (total < reserve + MIN_LAST_GROUP) return `${blocks} blocks is too small for an ext4 filesystem`
  if (total >= 2 ** 32) return "an image of 16 TiB or more is beyond banger's ext4 writer"
  const descriptorBlocks = divideUp(groups, DESCS_PER_BLOCK)
  if (1 + descriptorBlocks > reserve) {
    return `an image of ${total} blocks needs more group descriptor blocks than the ${reserve - 1} kept free for them`
  }
  const perGroup = Math.min(
    MAX_INODES_PER_GROUP,
    divideUp(divideUp(inodes, groups), INODES_PER_BLOCK) * INODES_PER_BLOCK
  )
  const inodesPerGroup = Math.max(perGroup, INODES_PER_BLOCK)
  if (inodesPerGroup * groups >= 2 ** 32) return "too many inodes for ext4"
  return {
    blocks: total,
    groups,
    inodesPerGroup,
    inodes: inodesPerGroup * groups,
    journalBlocks: defaultJournalBlocks(total),
    descriptorBlocks,
    inodeTableBlocks: inodesPerGroup / INODES_PER_BLOCK
  }
}

export interface MetadataPlacement {
  readonly journal: ReadonlyArray<BlockRun>
  readonly journalTree: ReadonlyArray<BlockRun>
  readonly inodeTables: ReadonlyArray<number>
  readonly blockBitmaps: ReadonlyArray<number>
  readonly inodeBitmaps: ReadonlyArray<number>
  /** The first block past all of it. */
  readonly end: number
}

/** Where the journal, inode tables and bitmaps go when allocated from `next` on. */
export const placeMetadata = (next: number, geometry: Geometry, reserve: number): MetadataPlacement => {
  let position = next
  const journalBump = bump(position, geometry.journalBlocks, reserve)
  position = journalBump.next
  const treeBump = bump(position, treeBlocksFor(extentsOf(journalBump.runs).length), reserve)
  position = treeBump.next
  const inodeTables: Array<number> = []
  const blockBitmaps: Array<number> = []
  const inodeBitmaps: Array<number> = []
  for (let group = 0; group < geometry.groups; group++) {
    const table = bumpContiguous(position, geometry.inodeTableBlocks, reserve)
    inodeTables.push(table.run.start)
    position = table.next
  }
  for (const list of [blockBitmaps, inodeBitmaps]) {
    for (let group = 0; group < geometry.groups; group++) {
      const bitmap = bumpContiguous(position, 1, reserve)
      list.push(bitmap.run.start)
      position = bitmap.next
    }
  }
  return {
    journal: journalBump.runs,
    journalTree: treeBump.runs,
    inodeTables,
    blockBitmaps,
    inodeBitmaps,
    end: position
  }
}

/** Whether a filesystem of `geometry` holds what is allocated below `next` and `usedInodes` inodes. */
export const fits = (geometry: Geometry, next: number, usedInodes: number, reserve: number) =>
  geometry.inodes >= usedInodes && placeMetadata(next, geometry, reserve).end <= geometry.blocks
