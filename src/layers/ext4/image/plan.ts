/**
 * Everything about the tree that does not depend on the filesystem's size: inode numbers, link
 * counts, directory blocks, symlink and xattr blocks and extent trees, all allocated after the file
 * contents. What is left (journal, inode tables, bitmaps) scales with the size, chosen next.
 */
import type { StoredContent } from "../../../domain/content.js"
import type { EntryType, TreeEntry } from "../../../domain/tree.js"
import type { BlockAllocator, BlockRun } from "./allocator.js"
import { type DirectoryEntry, directoryBlocks, encodeDirectory } from "./directory.js"
import { FileBlocks } from "./draft-contents.js"
import { buildExtentTree, extentsOf, treeBlocksFor } from "./extents.js"
import {
  BLOCK_SIZE,
  EXTENTS_FL,
  FIRST_INODE,
  LOST_FOUND_BLOCKS,
  LOST_FOUND_INODE,
  ROOT_INODE,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG
} from "./format.js"
import { type InodeFields, inodeSeed } from "./inode.js"
import { encodeXattrs, sealXattrBlock } from "./xattrs.js"

const TYPE_BITS: Record<EntryType, number> = {
  file: S_IFREG,
  directory: S_IFDIR,
  symlink: S_IFLNK,
  char: S_IFCHR,
  block: S_IFBLK,
  fifo: S_IFIFO
}
const FILE_TYPE: Record<EntryType, number> = { file: 1, directory: 2, char: 3, block: 4, fifo: 5, symlink: 7 }
/** The kernel's EXT4_LINK_MAX; a directory with more subdirectories counts 1 (dir_nlink). */
const LINK_MAX = 65000

/** A block the image needs written, with what goes in it once its number is known. */
export interface PendingBlock {
  readonly block: number
  readonly bytes: Uint8Array
  /** Checksums that include the block number (xattr blocks) are set just before writing. */
  readonly seal?: (bytes: Uint8Array, block: number) => void
}

export interface PlannedInode {
  readonly ino: number
  readonly fields: InodeFields
  readonly isDirectory: boolean
}

export interface TreePlan {
  /** Every inode from `ROOT_INODE` on, by number; the reserved ones it does not use are absent. */
  readonly inodes: ReadonlyArray<PlannedInode>
  /** The highest inode number in use. */
  readonly lastInode: number
  readonly blocks: ReadonlyArray<PendingBlock>
}

export interface PlanOptions {
  readonly fsSeed: number
  /** What lost+found gets when the entries have none (and the superblock): see `BuildExt4Options`. */
  readonly timestamp: number
  /** The stored contents of a regular file's primary entry. */
  readonly contentOf: (entry: TreeEntry) => StoredContent | undefined
}

const parentOf = (path: string) => path.slice(0, Math.max(path.lastIndexOf("/"), 0))
const baseOf = (path: string) => path.slice(path.lastIndexOf("/") + 1)

interface Node {
  readonly ino: number
  readonly entry: TreeEntry
  links: number
  subdirectories: number
  readonly children: Array<DirectoryEntry> | undefined
}

const checkEntry = (entry: TreeEntry): string | undefined => {
  const id = (value: number) => Number.isSafeInteger(value) && value >= 0 && value <= 0xffffffff
  if (!id(entry.uid) || !id(entry.gid)) return "uid and gid must be 32-bit unsigned integers"
  if (!Number.isSafeInteger(entry.mtime)) return "mtime must be whole seconds"
  if (entry.type === "char" || entry.type === "block") {
    const major = entry.devMajor ?? 0
    const minor = entry.devMinor ?? 0
    const fits = (value: number, max: number) => Number.isInteger(value) && value >= 0 && value <= max
    if (!fits(major, 0xfff) || !fits(minor, 0xfffff)) {
      return `device number ${major}:${minor} does not fit ext4 (12-bit major, 20-bit minor)`
    }
  }
  if (Buffer.byteLength(baseOf(entry.path)) > 255) return "name is longer than 255 bytes"
  return undefined
}

/** How ext4 (and the kernel) store a device number in i_block[0] / i_block[1]. */
export const encodeDevice = (major: number, minor: number): readonly [number, number] =>
  major < 256 && minor < 256
    ? [major * 256 + minor, 0]
    : [0, ((minor & 0xff) + major * 256 + Math.floor(minor / 256) * 256 * 4096) >>> 0]

/** Numbers the entries' inodes and lays out what they need; a string says why it cannot. */
export const planTree = (
  entries: ReadonlyArray<TreeEntry>,
  allocator: BlockAllocator,
  options: PlanOptions
): TreePlan | string => {
  const fail = (entry: TreeEntry, reason: string) => `${JSON.stringify(entry.path)}: ${reason}`
  const byPath = new Map<string, Node>()
  const nodes: Array<Node> = []
  let nextIno = FIRST_INODE + 1
  const hasLostFound = entries.some((entry) => entry.path === "lost+found" && entry.type === "directory")
  const lostFoundEntry: TreeEntry = {
    path: "lost+found",
    type: "directory",
    mode: 0o700,
    uid: 0,
    gid: 0,
    mtime: options.timestamp,
    size: 0,
    xattrs: []
  }
  const all = hasLostFound ? entries : [entries[0]!, lostFoundEntry, ...entries.slice(1)]
  if (entries[0]?.path !== "" || entries[0].type !== "directory")
    return "the entries must start with the root directory"

  for (const entry of all) {
    const problem = checkEntry(entry)
    if (problem !== undefined) return fail(entry, problem)
    if (byPath.has(entry.path)) return fail(entry, "listed twice")
    let node: Node
    if (entry.hardlinkTo !== undefined) {
      const target = byPath.get(entry.hardlinkTo)
      if (target === undefined || target.entry.type === "directory") {
        return fail(
          entry,
          `hard link to ${JSON.stringify(entry.hardlinkTo)}, which is not an earlier non-directory entry`
        )
      }
      node = target
      node.links++
      if (node.links > LINK_MAX) return fail(entry, `more than ${LINK_MAX} hard links`)
    } else {
      const ino =
        entry.path === ""
          ? ROOT_INODE
          : entry.path === "lost+found" && entry.type === "directory"
            ? LOST_FOUND_INODE
            : nextIno++
      node = { ino, entry, links: 1, subdirectories: 0, children: entry.type === "directory" ? [] : undefined }
      nodes.push(node)
    }
    byPath.set(entry.path, node)
    if (entry.path === "") continue
    const parent = byPath.get(parentOf(entry.path))
    if (parent?.children === undefined) return fail(entry, "its parent is not an earlier directory entry")
    parent.children.push({ name: Buffer.from(baseOf(entry.path)), inode: node.ino, fileType: FILE_TYPE[entry.type] })
    if (entry.type === "directory") parent.subdirectories++
  }

  const blocks: Array<PendingBlock> = []
  const inodes: Array<PlannedInode> = []
  const blocksOf = (runs: ReadonlyArray<BlockRun>) =>
    runs.flatMap((run) => Array.from({ length: run.length }, (_, i) => run.start + i))
  /** Writes the extent tree into `iBlock`; the number of blocks it takes outside the inode. */
  const withTree = (
    runs: ReadonlyArray<BlockRun>,
    seed: number,
    iBlock: Uint8Array,
    starts?: ReadonlyArray<number>
  ): number => {
    const extents = extentsOf(runs, starts)
    const treeRuns = allocator.allocate(treeBlocksFor(extents.length))
    const treeBlocks = buildExtentTree(extents, blocksOf(treeRuns), seed, iBlock)
    for (const block of treeBlocks) blocks.push(block)
    return treeBlocks.length
  }
  // One allocation for every inode's i_block: typed arrays of their own cost more than the rest.
  const iBlocks = new Uint8Array(nodes.length * 60)

  for (const [index, node] of nodes.entries()) {
    const { entry, ino } = node
    const seed = inodeSeed(options.fsSeed, ino)
    let size = 0
    let dataBlocks = 0
    let flags = 0
    const iBlock = iBlocks.subarray(index * 60, index * 60 + 60)
    let links = node.links
    switch (entry.type) {
      case "file": {
        const content = options.contentOf(entry)
        if (!(content instanceof FileBlocks)) return fail(entry, "its contents were not written to this image")
        if (content.size !== entry.size) return fail(entry, `holds ${content.size} bytes, ${entry.size} in the entries`)
        size = content.size
        dataBlocks =
          content.runs.reduce((sum, run) => sum + run.length, 0) + withTree(content.runs, seed, iBlock, content.logical)
        flags = EXTENTS_FL
        break
      }
      case "directory": {
        const parent = entry.path === "" ? ROOT_INODE : byPath.get(parentOf(entry.path))!.ino
        const minimum = ino === LOST_FOUND_INODE ? LOST_FOUND_BLOCKS : 1
        const count = directoryBlocks(node.children!, minimum)
        const runs = allocator.allocate(count)
        const contents = encodeDirectory(ino, parent, node.children!, count, seed)
        blocksOf(runs).forEach((block, index) => {
          blocks.push({ block, bytes: contents[index]! })
        })
        size = count * BLOCK_SIZE
        dataBlocks = count + withTree(runs, seed, iBlock)
        flags = EXTENTS_FL
        links = 2 + node.subdirectories > LINK_MAX ? 1 : 2 + node.subdirectories
        break
      }
      case "symlink": {
        const target = Buffer.from(entry.linkTarget ?? "")
        if (target.length === 0 || target.length >= BLOCK_SIZE)
          return fail(entry, "symlink target must be 1 to 4095 bytes")
        size = target.length
        if (target.length < 60) {
          iBlock.set(target)
        } else {
          const runs = allocator.allocate(1)
          const bytes = new Uint8Array(BLOCK_SIZE)
          bytes.set(target)
          blocks.push({ block: runs[0]!.start, bytes })
          dataBlocks = 1 + withTree(runs, seed, iBlock)
          flags = EXTENTS_FL
        }
        break
      }
      case "char":
      case "block": {
        const [low, high] = encodeDevice(entry.devMajor ?? 0, entry.devMinor ?? 0)
        const view = new DataView(iBlock.buffer, iBlock.byteOffset, 60)
        view.setUint32(0, low, true)
        view.setUint32(4, high, true)
        break
      }
      case "fifo":
        break
    }
    const xattrs = encodeXattrs(entry.xattrs)
    if (typeof xattrs === "string") return fail(entry, xattrs)
    let xattrBlock = 0
    if (xattrs.block !== undefined) {
      xattrBlock = allocator.allocate(1)[0]!.start
      blocks.push({
        block: xattrBlock,
        bytes: xattrs.block,
        seal: (bytes, block) => sealXattrBlock(bytes, block, options.fsSeed)
      })
      dataBlocks++
    }
    inodes.push({
      ino,
      isDirectory: entry.type === "directory",
      fields: {
        mode: TYPE_BITS[entry.type] | (entry.mode & 0o7777),
        uid: entry.uid,
        gid: entry.gid,
        size,
        links,
        time: entry.mtime,
        flags,
        iBlock,
        blocks: dataBlocks * (BLOCK_SIZE / 512),
        xattrBlock,
        inlineXattrs: xattrs.inline
      }
    })
  }
  inodes.sort((a, b) => a.ino - b.ino)
  return { inodes, lastInode: Math.max(FIRST_INODE, nextIno - 1), blocks }
}
