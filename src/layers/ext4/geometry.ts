/**
 * The on-disk layout mkfs.ext4 will choose for a given size and inode count, computed the way
 * e2fsprogs 1.47 does (`ext2fs_initialize`, `calc_reserved_gdt_blocks`,
 * `ext2fs_default_journal_size`), so image sizes can be checked before running mkfs. It only holds
 * for the fixed profile banger passes to mkfs (see mkfs.ts): 4 KiB blocks, 256-byte inodes, 64bit,
 * flex_bg, sparse_super, resize_inode, has_journal.
 */

export const BLOCK_SIZE = 4096
export const INODE_SIZE = 256
/** mkfs's default bytes-per-inode in banger's profile. */
export const INODE_RATIO = 16384
/** Inodes 1..10 are reserved; 11 is lost+found. */
export const FIRST_INODE = 11

const MAX_BLOCKS_PER_GROUP = BLOCK_SIZE * 8
const MAX_INODES_PER_GROUP = BLOCK_SIZE * 8
const DESCRIPTORS_PER_BLOCK = BLOCK_SIZE / 64
const INODES_PER_BLOCK = BLOCK_SIZE / INODE_SIZE
const ADDRESSES_PER_BLOCK = BLOCK_SIZE / 4
const U32_MAX = 0xffffffff

export interface Layout {
  /** Blocks mkfs will actually use (a too-small trailing group is dropped). */
  readonly blocks: number
  readonly groups: number
  readonly blocksPerGroup: number
  readonly inodesPerGroup: number
  readonly inodes: number
  /** Superblocks, descriptors, reserved GDT, bitmaps and inode tables of every group. */
  readonly metadataBlocks: number
  readonly journalBlocks: number
  readonly reservedGdtBlocks: number
}

const isPowerOf = (n: number, base: number) => {
  let value = base
  while (value < n) value *= base
  return value === n
}

/** sparse_super: backups live in groups 0, 1 and powers of 3, 5 and 7. */
export const groupHasSuperblock = (group: number) =>
  group <= 1 || isPowerOf(group, 3) || isPowerOf(group, 5) || isPowerOf(group, 7)

export const defaultJournalBlocks = (blocks: number): number => {
  if (blocks < 2048) return 0
  if (blocks < 32768) return 1024
  if (blocks < 256 * 1024) return 4096
  if (blocks < 512 * 1024) return 8192
  if (blocks < 4096 * 1024) return 16384
  if (blocks < 8192 * 1024) return 32768
  if (blocks < 16384 * 1024) return 65536
  if (blocks < 32768 * 1024) return 131072
  return 262144
}

/** mkfs's inode count when `-N` is not given. */
export const defaultInodes = (sizeBytes: number) =>
  Math.floor((Math.floor(sizeBytes / BLOCK_SIZE) * BLOCK_SIZE) / INODE_RATIO)

/**
 * The layout of an image of `sizeBytes` with at least `inodes` inodes, or undefined where mkfs would
 * refuse (too small, too many inodes).
 */
export const layout = (sizeBytes: number, inodes: number = defaultInodes(sizeBytes)): Layout | undefined => {
  const requestedBlocks = Math.floor(sizeBytes / BLOCK_SIZE)
  const inodeCount = Math.max(inodes, FIRST_INODE + 1)
  if (inodeCount * INODE_SIZE >= requestedBlocks * BLOCK_SIZE) return undefined
  let blocks = requestedBlocks
  let blocksPerGroup = MAX_BLOCKS_PER_GROUP
  for (;;) {
    const groups = Math.ceil(blocks / blocksPerGroup)
    if (groups === 0) return undefined
    const descBlocks = Math.ceil(groups / DESCRIPTORS_PER_BLOCK)
    const wanted = Math.ceil(inodeCount / groups)
    if (wanted > MAX_INODES_PER_GROUP) {
      // mkfs shrinks the groups to fit more of them, then starts over from the full size.
      if (blocksPerGroup < 256) return undefined
      blocksPerGroup -= 8
      blocks = requestedBlocks
      continue
    }
    let tableBlocks = Math.ceil((wanted * INODE_SIZE) / BLOCK_SIZE)
    let inodesPerGroup = tableBlocks * INODES_PER_BLOCK
    inodesPerGroup = Math.max(inodesPerGroup, 8) & ~7
    tableBlocks = Math.ceil((inodesPerGroup * INODE_SIZE) / BLOCK_SIZE)
    const maxBlocks = blocks < Math.floor(U32_MAX / 1024) ? blocks * 1024 : U32_MAX
    const reservedGdt = Math.min(
      Math.max(Math.ceil(Math.ceil(maxBlocks / blocksPerGroup) / DESCRIPTORS_PER_BLOCK) - descBlocks, 0),
      ADDRESSES_PER_BLOCK
    )
    if (3 + tableBlocks + reservedGdt + descBlocks > blocksPerGroup) return undefined
    const backup = 1 + descBlocks + reservedGdt
    const lastOverhead = 2 + tableBlocks + (groupHasSuperblock(groups - 1) ? backup : 0)
    const remainder = blocks % blocksPerGroup
    if (groups === 1 && remainder > 0 && remainder < lastOverhead) return undefined
    if (remainder > 0 && remainder < lastOverhead + 50) {
      blocks -= remainder
      continue
    }
    let metadataBlocks = 0
    for (let group = 0; group < groups; group++) {
      metadataBlocks += 2 + tableBlocks + (groupHasSuperblock(group) ? backup : 0)
    }
    return {
      blocks,
      groups,
      blocksPerGroup,
      inodesPerGroup,
      inodes: inodesPerGroup * groups,
      metadataBlocks,
      journalBlocks: defaultJournalBlocks(blocks),
      reservedGdtBlocks: reservedGdt
    }
  }
}

/** Blocks an extent tree needs beyond the four extents the inode holds. */
export const extentTreeBlocks = (extents: number): number => {
  if (extents <= 4) return 0
  const perBlock = Math.floor((BLOCK_SIZE - 12) / 12)
  let blocks = 0
  let level = extents
  while (level > 4) {
    level = Math.ceil(level / perBlock)
    blocks += level
  }
  return blocks
}
