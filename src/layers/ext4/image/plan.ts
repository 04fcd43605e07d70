/**
 * Everything about the tree that does not depend on the filesystem's size: inode numbers, link
 * counts, directory blocks, symlink and xattr blocks and extent trees, all allocated after the file
 * contents and written at once. What is left (journal, inode tables, bitmaps) scales with the
 * size, chosen next. Per inode the plan keeps a few numbers in typed arrays and the bytes of its
 * i_block; the rest of each inode is read from the entries again when the inode table is written.
 */
import type { EntryList } from "../../../domain/entry-list.js"
import { pathAt } from "../../../domain/entry-list.js"
import type { EntryType } from "../../../domain/tree.js"
import type { BlockAllocator, BlockRun } from "./allocator.js"
import { type DirectoryEntry, directoryBlocks, encodeDirectory } from "./directory.js"
import { FileBlocks } from "./draft-contents.js"
import { buildExtentTree, extentsOf, treeBlocksFor, writeContiguousRoot } from "./extents.js"
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
import { inodeSeed } from "./inode.js"
import { encodeXattrs, sealXattrBlock } from "./xattrs.js"

export const TYPE_BITS: Record<EntryType, number> = {
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

export interface PlanOptions {
  readonly fsSeed: number
  /** What lost+found gets when the entries have none (and the superblock): see `BuildExt4Options`. */
  readonly timestamp: number
  /** Writes a block the tree needs (directories, extent trees, symlink targets, xattrs). */
  readonly write: (block: number, bytes: Uint8Array) => void
}

const NAME_MAX = 255

/** The entries, with lost+found added as the root's first child when they have none. */
interface PlanEntries {
  readonly list: EntryList
  /** Entries plus the added lost+found, if any (at index `list.length`). */
  readonly length: number
  readonly added: boolean
  readonly timestamp: number
}

const typeAt = (entries: PlanEntries, index: number): EntryType =>
  index === entries.list.length ? "directory" : entries.list.type(index)

/** The fields of an inode the plan does not keep: they come from its entry. */
export interface EntryFields {
  type: EntryType
  mode: number
  uid: number
  gid: number
  mtime: number
}

/** Reads an entry's fields into `into`, a record reused for every inode (a 500k-file tree has 500k). */
const readFieldsAt = (entries: PlanEntries, index: number, into: EntryFields) => {
  if (index === entries.list.length) {
    into.type = "directory"
    into.mode = 0o700
    into.uid = 0
    into.gid = 0
    into.mtime = entries.timestamp
    return
  }
  const list = entries.list
  into.type = list.type(index)
  into.mode = list.mode(index)
  into.uid = list.uid(index)
  into.gid = list.gid(index)
  into.mtime = list.mtime(index)
}

/**
 * A contiguous file's extent root, written straight into its i_block (`view`) without an object
 * per file; false, with nothing written, for any other file or one whose extents need blocks.
 */
const writeContiguousFileRoot = (view: DataView, content: FileBlocks): boolean =>
  content.isContiguous && writeContiguousRoot(view, content.start, content.length)

const ARENA_CHUNK = 1024 * 1024
/** An i_block length no i_block has (at most 60): see `deriveIBlock`. */
const DERIVED = 255

/** What the plan keeps per inode, by inode number, from `ROOT_INODE` to `lastInode`. */
export class PlannedInodes {
  /** The entry an inode was made from; -1 for the reserved inodes the tree does not use. */
  readonly entry: Int32Array
  readonly links: Uint16Array
  /** 1 where the inode uses extents (EXTENTS_FL). */
  readonly extents: Uint8Array
  /** Blocks the inode owns (data, extent tree, xattr block); images stay below 2^32 blocks. */
  readonly blocks: Uint32Array
  readonly xattrBlock: Uint32Array
  /** A directory's size; a file's is its entry's, a symlink's its target's. */
  readonly directorySize = new Map<number, number>()
  private readonly iBlockAt: Uint32Array
  private readonly iBlockLength: Uint8Array
  // Fixed chunks rather than one doubling array: no copy, and no unused half at the peak.
  private readonly arena: Array<Uint8Array> = []
  private arenaUsed = ARENA_CHUNK
  readonly inlineXattrs = new Map<number, Uint8Array>()

  constructor(
    readonly count: number,
    private readonly entries: PlanEntries
  ) {
    this.entry = new Int32Array(count).fill(-1)
    this.links = new Uint16Array(count)
    this.extents = new Uint8Array(count)
    this.blocks = new Uint32Array(count)
    this.xattrBlock = new Uint32Array(count)
    this.iBlockAt = new Uint32Array(count)
    this.iBlockLength = new Uint8Array(count)
  }

  /** Keeps `iBlock` without its trailing zeros (most use 24 of its 60 bytes). */
  setIBlock(ino: number, iBlock: Uint8Array) {
    let length = 60
    while (length > 0 && iBlock[length - 1] === 0) length--
    if (this.arenaUsed + length > ARENA_CHUNK) {
      this.arena.push(new Uint8Array(ARENA_CHUNK))
      this.arenaUsed = 0
    }
    this.arena[this.arena.length - 1]!.set(iBlock.subarray(0, length), this.arenaUsed)
    this.iBlockAt[ino] = (this.arena.length - 1) * ARENA_CHUNK + this.arenaUsed
    this.iBlockLength[ino] = length
    this.arenaUsed += length
  }

  /**
   * For a file whose extents fit in its inode: nothing kept, since they follow from its contents
   * (two numbers in the tree model). ~24 bytes an inode, 12 MiB on a 500k-file tree.
   */
  deriveIBlock(ino: number) {
    this.iBlockLength[ino] = DERIVED
  }

  /** Fills `iBlock` (60 bytes; `view` is a DataView of it) with the inode's. */
  iBlock(ino: number, iBlock: Uint8Array, view: DataView) {
    iBlock.fill(0)
    const length = this.iBlockLength[ino]!
    if (length === DERIVED) {
      const content = this.entries.list.content(this.entry[ino]!) as FileBlocks
      if (!writeContiguousFileRoot(view, content))
        buildExtentTree(extentsOf(content.runs, content.logical), [], 0, iBlock)
      return
    }
    if (length === 0) return
    const at = this.iBlockAt[ino]!
    const offset = at % ARENA_CHUNK
    iBlock.set(this.arena[(at - offset) / ARENA_CHUNK]!.subarray(offset, offset + length))
  }

  isDirectory(ino: number) {
    const entry = this.entry[ino]!
    return entry >= 0 && typeAt(this.entries, entry) === "directory"
  }

  /** Reads the inode's entry fields into `into`; false for an inode the tree does not use. */
  readFields(ino: number, into: EntryFields): boolean {
    const entry = this.entry[ino]!
    if (entry < 0) return false
    readFieldsAt(this.entries, entry, into)
    return true
  }

  size(ino: number): number {
    const entry = this.entry[ino]!
    if (entry < 0) return 0
    switch (typeAt(this.entries, entry)) {
      case "file":
        return this.entries.list.size(entry)
      case "directory":
        return this.directorySize.get(ino)!
      case "symlink":
        return Buffer.byteLength(this.entries.list.linkTarget(entry)!)
      default:
        return 0
    }
  }
}

export interface TreePlan {
  readonly inodes: PlannedInodes
  /** The highest inode number in use. */
  readonly lastInode: number
}

const checkEntry = (list: EntryList, index: number): string | undefined => {
  const id = (value: number) => Number.isSafeInteger(value) && value >= 0 && value <= 0xffffffff
  if (!id(list.uid(index)) || !id(list.gid(index))) return "uid and gid must be 32-bit unsigned integers"
  if (!Number.isSafeInteger(list.mtime(index))) return "mtime must be whole seconds"
  const type = list.type(index)
  if (type === "char" || type === "block") {
    const major = list.devMajor(index) ?? 0
    const minor = list.devMinor(index) ?? 0
    const fits = (value: number, max: number) => Number.isInteger(value) && value >= 0 && value <= max
    if (!fits(major, 0xfff) || !fits(minor, 0xfffff)) {
      return `device number ${major}:${minor} does not fit ext4 (12-bit major, 20-bit minor)`
    }
  }
  const name = list.name(index)
  if (name.length > NAME_MAX / 3 && Buffer.byteLength(name) > NAME_MAX) return "name is longer than 255 bytes"
  return undefined
}

/** How ext4 (and the kernel) store a device number in i_block[0] / i_block[1]. */
export const encodeDevice = (major: number, minor: number): readonly [number, number] =>
  major < 256 && minor < 256
    ? [major * 256 + minor, 0]
    : [0, ((minor & 0xff) + major * 256 + Math.floor(minor / 256) * 256 * 4096) >>> 0]

/** Numbers the entries' inodes and lays out what they need; a string says why it cannot. */
export const planTree = (list: EntryList, allocator: BlockAllocator, options: PlanOptions): TreePlan | string => {
  const fail = (index: number, reason: string) =>
    `${JSON.stringify(index === list.length ? "lost+found" : pathAt(list, index))}: ${reason}`
  const count = list.length
  if (count === 0 || list.parent(0) !== -1 || list.type(0) !== "directory") {
    return "the entries must start with the root directory"
  }
  let existingLostFound = -1
  for (let index = 1; index < count; index++) {
    if (list.parent(index) === 0 && list.name(index) === "lost+found") existingLostFound = index
  }
  if (existingLostFound >= 0 && list.type(existingLostFound) !== "directory") {
    return fail(existingLostFound, "listed twice")
  }
  const added = existingLostFound < 0
  const entries: PlanEntries = { list, length: count + (added ? 1 : 0), added, timestamp: options.timestamp }
  const lostFound = added ? count : existingLostFound

  // Inode numbers, link counts and each directory's children (as linked lists, in order).
  const inoOf = new Int32Array(entries.length)
  let nextIno = FIRST_INODE + 1
  const linkCounts = new Map<number, number>()
  for (let index = 0; index < count; index++) {
    const problem = checkEntry(list, index)
    if (problem !== undefined) return fail(index, problem)
    const primary = list.primary(index)
    if (primary !== index) {
      if (primary > index || list.type(primary) === "directory") {
        return fail(index, "hard link to an entry that is not an earlier non-directory entry")
      }
      inoOf[index] = inoOf[primary]!
      const links = (linkCounts.get(primary) ?? 1) + 1
      if (links > LINK_MAX) return fail(index, `more than ${LINK_MAX} hard links`)
      linkCounts.set(primary, links)
    } else {
      inoOf[index] = index === 0 ? ROOT_INODE : index === lostFound ? LOST_FOUND_INODE : nextIno++
    }
    if (index === 0) continue
    const parent = list.parent(index)
    if (parent < 0 || parent >= index || list.type(parent) !== "directory") {
      return fail(index, "its parent is not an earlier directory entry")
    }
  }
  if (added) inoOf[lostFound] = LOST_FOUND_INODE
  // Built from the end, so each list comes out in entry order; an added lost+found comes first.
  const firstChild = new Int32Array(entries.length).fill(-1)
  const nextSibling = new Int32Array(entries.length).fill(-1)
  for (let index = count - 1; index > 0; index--) {
    const parent = list.parent(index)
    nextSibling[index] = firstChild[parent]!
    firstChild[parent] = index
  }
  if (added) {
    nextSibling[lostFound] = firstChild[0]!
    firstChild[0] = lostFound
  }
  const lastInode = Math.max(FIRST_INODE, nextIno - 1)
  const inodes = new PlannedInodes(lastInode + 1, entries)

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
    for (const block of treeBlocks) options.write(block.block, block.bytes)
    return treeBlocks.length
  }
  const iBlock = new Uint8Array(60)
  const iBlockView = new DataView(iBlock.buffer)

  // Blocks go to the root, lost+found, then the rest in order.
  const layoutOrder = function* () {
    yield 0
    if (added) yield count
    for (let index = 1; index < count; index++) yield index
  }
  for (const index of layoutOrder()) {
    const isList = index < count
    if (isList && list.primary(index) !== index) continue
    const ino = inoOf[index]!
    const type = typeAt(entries, index)
    const seed = inodeSeed(options.fsSeed, ino)
    let dataBlocks = 0
    let flags = 0
    let links = linkCounts.get(index) ?? 1
    let derived = false
    iBlock.fill(0)
    switch (type) {
      case "file": {
        const content = list.content(index)
        if (!(content instanceof FileBlocks)) return fail(index, "its contents were not written to this image")
        if (content.size !== list.size(index)) {
          return fail(index, `holds ${content.size} bytes, ${list.size(index)} in the entries`)
        }
        const treeBlocks = writeContiguousFileRoot(iBlockView, content)
          ? 0
          : withTree(content.runs, seed, iBlock, content.logical)
        dataBlocks = content.blockCount + treeBlocks
        flags = EXTENTS_FL
        derived = treeBlocks === 0
        break
      }
      case "directory": {
        const parent = index === 0 ? ROOT_INODE : inoOf[isList ? list.parent(index) : 0]!
        const children: Array<DirectoryEntry> = []
        let subdirectories = 0
        for (let child = firstChild[index]!; child !== -1; child = nextSibling[child]!) {
          const childType = typeAt(entries, child)
          if (childType === "directory") subdirectories++
          const name = child === count ? "lost+found" : list.name(child)
          children.push({ name: Buffer.from(name), inode: inoOf[child]!, fileType: FILE_TYPE[childType] })
        }
        const minimum = ino === LOST_FOUND_INODE ? LOST_FOUND_BLOCKS : 1
        const blockCount = directoryBlocks(children, minimum)
        const runs = allocator.allocate(blockCount)
        const blocks = blocksOf(runs)
        encodeDirectory(ino, parent, children, blockCount, seed, (at, bytes) => options.write(blocks[at]!, bytes))
        inodes.directorySize.set(ino, blockCount * BLOCK_SIZE)
        dataBlocks = blockCount + withTree(runs, seed, iBlock)
        flags = EXTENTS_FL
        links = 2 + subdirectories > LINK_MAX ? 1 : 2 + subdirectories
        break
      }
      case "symlink": {
        const target = Buffer.from(list.linkTarget(index) ?? "")
        if (target.length === 0 || target.length >= BLOCK_SIZE)
          return fail(index, "symlink target must be 1 to 4095 bytes")
        if (target.length < 60) {
          iBlock.set(target)
        } else {
          const runs = allocator.allocate(1)
          const bytes = new Uint8Array(BLOCK_SIZE)
          bytes.set(target)
          options.write(runs[0]!.start, bytes)
          dataBlocks = 1 + withTree(runs, seed, iBlock)
          flags = EXTENTS_FL
        }
        break
      }
      case "char":
      case "block": {
        const [low, high] = encodeDevice(list.devMajor(index) ?? 0, list.devMinor(index) ?? 0)
        iBlockView.setUint32(0, low, true)
        iBlockView.setUint32(4, high, true)
        break
      }
      case "fifo":
        break
    }
    if (isList) {
      const xattrs = encodeXattrs(list.xattrs(index))
      if (typeof xattrs === "string") return fail(index, xattrs)
      if (xattrs.block !== undefined) {
        const block = allocator.allocate(1)[0]!.start
        sealXattrBlock(xattrs.block, block, options.fsSeed)
        options.write(block, xattrs.block)
        inodes.xattrBlock[ino] = block
        dataBlocks++
      }
      if (xattrs.inline !== undefined) inodes.inlineXattrs.set(ino, xattrs.inline)
    }
    inodes.entry[ino] = index
    inodes.links[ino] = links
    inodes.extents[ino] = flags === EXTENTS_FL ? 1 : 0
    inodes.blocks[ino] = dataBlocks
    if (derived) inodes.deriveIBlock(ino)
    else inodes.setIBlock(ino, iBlock)
  }
  return { inodes, lastInode }
}
