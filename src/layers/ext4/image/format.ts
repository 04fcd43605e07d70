/**
 * The on-disk format banger writes: ext4 with 4 KiB blocks, 256-byte inodes, extents, 64-bit block
 * numbers, flex_bg (so group metadata may live anywhere) and metadata checksums; no resize inode.
 * This is what `mkfs.ext4 -t ext4` makes on a current Debian, minus features (orphan_file,
 * metadata_csum_seed) that older guest kernels cannot mount.
 */
export const BLOCK_SIZE = 4096
export const BLOCKS_PER_GROUP = 32768
export const INODE_SIZE = 256
export const INODES_PER_BLOCK = BLOCK_SIZE / INODE_SIZE
/** Bytes of the inode beyond the 128-byte core that the kernel's fields use. */
export const EXTRA_ISIZE = 32
export const DESC_SIZE = 64
export const DESCS_PER_BLOCK = BLOCK_SIZE / DESC_SIZE
/** One inode per 16 KiB by default, as mkfs does. */
export const INODE_RATIO = 16384
export const MAX_INODES_PER_GROUP = 8 * BLOCK_SIZE
export const LOG_GROUPS_PER_FLEX = 4

export const ROOT_INODE = 2
export const JOURNAL_INODE = 8
export const LOST_FOUND_INODE = 11
export const FIRST_INODE = 11
/** lost+found as mkfs makes it: 16 KiB, so e2fsck can reconnect files without growing it. */
export const LOST_FOUND_BLOCKS = 4

export const COMPAT_HAS_JOURNAL = 0x4
export const COMPAT_EXT_ATTR = 0x8
export const COMPAT_DIR_INDEX = 0x20
export const INCOMPAT_FILETYPE = 0x2
export const INCOMPAT_EXTENTS = 0x40
export const INCOMPAT_64BIT = 0x80
export const INCOMPAT_FLEX_BG = 0x200
export const RO_COMPAT_SPARSE_SUPER = 0x1
export const RO_COMPAT_LARGE_FILE = 0x2
export const RO_COMPAT_HUGE_FILE = 0x8
export const RO_COMPAT_DIR_NLINK = 0x20
export const RO_COMPAT_EXTRA_ISIZE = 0x40
export const RO_COMPAT_METADATA_CSUM = 0x400

export const EXTENTS_FL = 0x80000
export const BG_INODE_ZEROED = 0x4

export const S_IFIFO = 0o010000
export const S_IFCHR = 0o020000
export const S_IFDIR = 0o040000
export const S_IFBLK = 0o060000
export const S_IFREG = 0o100000
export const S_IFLNK = 0o120000

/** Groups holding a backup superblock and descriptor table under sparse_super: 0, 1 and powers of 3, 5, 7. */
export const hasSuperblockBackup = (group: number): boolean => {
  if (group <= 1) return true
  for (const base of [3, 5, 7]) {
    let power = base
    while (power < group) power *= base
    if (power === group) return true
  }
  return false
}

export const divideUp = (value: number, by: number) => Math.ceil(value / by)

/**
 * Journal blocks for a filesystem of `blocks`, as e2fsprogs picks them (ext2fs_default_journal_size);
 * 0 when too small for one.
 */
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
