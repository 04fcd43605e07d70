/**
 * The in-memory model of the rootfs being built: names in a tree (nodes) pointing at inodes. It is
 * the authority on what every path is; the disk tree only mirrors contents. Hardlinked names share
 * one inode, so a metadata change reaches every name, as on a filesystem.
 *
 * Nodes and inodes are numbers indexing typed arrays, not objects: an object per entry (node,
 * inode, their arrays and path strings) cost ~600 bytes an entry and most of a big pull's GC time.
 * Here an entry costs its name string, a slot in its directory's map and ~60 bytes of arrays.
 * Numbers are never reused: a removed node keeps its slots (whiteouts and replacements are few).
 */
import type { ContentPacking, StoredContent } from "../../domain/content.js"
import type { EntryType } from "../../domain/tree.js"

export type NodeId = number
export type InodeId = number

const TYPES: ReadonlyArray<EntryType> = ["file", "directory", "symlink", "char", "block", "fifo"]
const TYPE_CODE = new Map(TYPES.map((type, code) => [type, code]))
const DIRECTORY = TYPE_CODE.get("directory")!
const NONE = -1
const NO_CONTENT = 0
const PACKED = 1
const OBJECT = 2

// Growing by half, not double, keeps the unused tail of each array to a third at most.
const grown = <T extends Int32Array | Uint8Array | Uint16Array | Uint32Array>(array: T, needed: number): T => {
  if (needed <= array.length) return array
  const bigger = new (array.constructor as new (length: number) => T)(Math.max(needed, Math.ceil(array.length * 1.5)))
  bigger.set(array)
  return bigger
}

/** A copy holding exactly `length` elements, so a sealed model carries no growth slack. */
const trimmed = <T extends Int32Array | Uint8Array | Uint16Array | Uint32Array>(array: T, length: number): T =>
  length === array.length ? array : (array.slice(0, length) as T)

const scratch = Buffer.allocUnsafe(4096)

/**
 * A copy of `name` that holds no other string alive. Path components come out of `split` as
 * slices of the whole path, and V8 keeps the whole path for as long as a slice of 13 characters
 * or more lives: ~90 bytes an entry kept only for that. A UTF-8 round trip makes a flat copy.
 */
const ownCopy = (name: string): string => {
  if (name.length < 13 || name.length > scratch.length / 3) return name
  const copy = scratch.toString("utf8", 0, scratch.write(name, 0))
  // A lone surrogate would not survive the round trip; such a name keeps its parent string.
  return copy === name ? copy : name
}

/** The header fields an inode takes from a tar entry. */
export interface InodeMeta {
  readonly mode: number
  readonly uid: number
  readonly gid: number
  readonly mtime: number
}

export class TreeModel {
  readonly root: NodeId = 0
  private nodeCount = 0
  private inodeCount = 0
  private nodeParent = new Int32Array(1024)
  private nodeInode = new Int32Array(1024)
  /** The layer (1-based) that last added or touched each node: see `markAdded`. */
  private nodeMark = new Int32Array(1024)
  private readonly nodeName: Array<string> = []
  /** A directory node's children by name; only directories have one. */
  private readonly children = new Map<NodeId, Map<string, NodeId>>()

  private inodeType = new Uint8Array(1024)
  private inodeMode = new Uint16Array(1024)
  // Ids are 32-bit in practice; any other value (the ext4 writer refuses it) waits in `oddIds`.
  private inodeUid = new Uint32Array(1024)
  private inodeGid = new Uint32Array(1024)
  private readonly oddIds = new Map<InodeId, readonly [uid: number, gid: number]>()
  // Times before 1970 or after 2106 and files of 4 GiB or more are rare: they wait in maps too.
  private inodeMtime = new Uint32Array(1024)
  private readonly oddMtimes = new Map<InodeId, number>()
  private inodeSize = new Uint32Array(1024)
  private readonly largeSizes = new Map<InodeId, number>()
  /** Names in the tree (attach counts them; removals through a content sink uncount them). */
  private inodeLinks = new Int32Array(1024)
  // Rare fields live in maps keyed by inode.
  private readonly linkTargets = new Map<InodeId, string>()
  private readonly devices = new Map<InodeId, readonly [major: number, minor: number]>()
  private readonly xattrMap = new Map<InodeId, ReadonlyArray<readonly [name: string, value: Uint8Array]>>()
  /** Where a file's contents went, when flattened into a content sink: packed, or an object. */
  private contentKind = new Uint8Array(1024)
  private contentFirst = new Uint32Array(1024)
  private contentSecond = new Uint32Array(1024)
  private readonly contentOf = new Map<InodeId, StoredContent>()

  constructor(private readonly packing?: ContentPacking | undefined) {
    const inode = this.newInode("directory", { mode: 0o755, uid: 0, gid: 0, mtime: 0 })
    this.addNode(NONE, "", inode)
  }

  get nodes() {
    return this.nodeCount
  }

  get inodes() {
    return this.inodeCount
  }

  newInode(type: EntryType, meta: InodeMeta): InodeId {
    const inode = this.inodeCount++
    if (inode >= this.inodeType.length) {
      const needed = inode + 1
      this.inodeType = grown(this.inodeType, needed)
      this.inodeMode = grown(this.inodeMode, needed)
      this.inodeUid = grown(this.inodeUid, needed)
      this.inodeGid = grown(this.inodeGid, needed)
      this.inodeMtime = grown(this.inodeMtime, needed)
      this.inodeSize = grown(this.inodeSize, needed)
      this.inodeLinks = grown(this.inodeLinks, needed)
      this.contentKind = grown(this.contentKind, needed)
      this.contentFirst = grown(this.contentFirst, needed)
      this.contentSecond = grown(this.contentSecond, needed)
    }
    this.contentKind[inode] = NO_CONTENT
    this.inodeType[inode] = TYPE_CODE.get(type)!
    this.setMeta(inode, meta)
    return inode
  }

  setMeta(inode: InodeId, meta: InodeMeta) {
    this.inodeMode[inode] = meta.mode
    this.inodeUid[inode] = meta.uid
    this.inodeGid[inode] = meta.gid
    this.inodeMtime[inode] = meta.mtime
    if (this.inodeMtime[inode] !== meta.mtime) this.oddMtimes.set(inode, meta.mtime)
    else if (this.oddMtimes.size > 0) this.oddMtimes.delete(inode)
    if (this.inodeUid[inode] !== meta.uid || this.inodeGid[inode] !== meta.gid) {
      this.oddIds.set(inode, [meta.uid, meta.gid])
    } else if (this.oddIds.size > 0) {
      this.oddIds.delete(inode)
    }
  }

  private addNode(parent: NodeId, name: string, inode: InodeId): NodeId {
    const node = this.nodeCount++
    if (node >= this.nodeParent.length) {
      this.nodeParent = grown(this.nodeParent, node + 1)
      this.nodeInode = grown(this.nodeInode, node + 1)
      this.nodeMark = grown(this.nodeMark, node + 1)
    }
    this.nodeParent[node] = parent
    this.nodeInode[node] = inode
    this.nodeMark[node] = 0
    this.nodeName.push(name)
    this.inodeLinks[inode]!++
    if (this.inodeType[inode] === DIRECTORY) this.children.set(node, new Map())
    return node
  }

  /** A new name for `inode` in the directory `parent`, replacing nothing: detach first. */
  attach(parent: NodeId, name: string, inode: InodeId): NodeId {
    const own = ownCopy(name)
    const node = this.addNode(parent, own, inode)
    this.children.get(parent)!.set(own, node)
    return node
  }

  /** Takes the node and everything below it out of the tree. */
  detach(node: NodeId) {
    const parent = this.nodeParent[node]!
    if (parent !== NONE) this.children.get(parent)?.delete(this.nodeName[node]!)
    this.nodeParent[node] = NONE
    // Nothing below is reachable any more: only the nodes' numbers remain (see isAttached).
    const stack = [node]
    while (stack.length > 0) {
      const directory = stack.pop()!
      const below = this.children.get(directory)
      if (below === undefined) continue
      for (const child of below.values()) stack.push(child)
      this.children.delete(directory)
    }
  }

  child(directory: NodeId, name: string): NodeId | undefined {
    return this.children.get(directory)?.get(name)
  }

  /** The children of a directory node (none for anything else), in no particular order. */
  childrenOf(node: NodeId): IterableIterator<NodeId> | undefined {
    return this.children.get(node)?.values()
  }

  childNames(node: NodeId): IterableIterator<string> | undefined {
    return this.children.get(node)?.keys()
  }

  parentOf(node: NodeId): NodeId | undefined {
    const parent = this.nodeParent[node]!
    return parent === NONE ? undefined : parent
  }

  nameOf(node: NodeId): string {
    return this.nodeName[node]!
  }

  inodeOf(node: NodeId): InodeId {
    return this.nodeInode[node]!
  }

  typeOf(node: NodeId): EntryType {
    return TYPES[this.inodeType[this.nodeInode[node]!]!]!
  }

  isDirectory(node: NodeId): boolean {
    return this.inodeType[this.nodeInode[node]!] === DIRECTORY
  }

  typeOfInode(inode: InodeId): EntryType {
    return TYPES[this.inodeType[inode]!]!
  }

  mode(inode: InodeId) {
    return this.inodeMode[inode]!
  }
  setMode(inode: InodeId, mode: number) {
    this.inodeMode[inode] = mode
  }
  uid(inode: InodeId) {
    return this.oddIds.size === 0 ? this.inodeUid[inode]! : (this.oddIds.get(inode)?.[0] ?? this.inodeUid[inode]!)
  }
  gid(inode: InodeId) {
    return this.oddIds.size === 0 ? this.inodeGid[inode]! : (this.oddIds.get(inode)?.[1] ?? this.inodeGid[inode]!)
  }
  mtime(inode: InodeId) {
    return this.oddMtimes.size === 0 ? this.inodeMtime[inode]! : (this.oddMtimes.get(inode) ?? this.inodeMtime[inode]!)
  }
  size(inode: InodeId) {
    return this.largeSizes.size === 0 ? this.inodeSize[inode]! : (this.largeSizes.get(inode) ?? this.inodeSize[inode]!)
  }
  setSize(inode: InodeId, size: number) {
    this.inodeSize[inode] = size
    if (this.inodeSize[inode] !== size) this.largeSizes.set(inode, size)
    else if (this.largeSizes.size > 0) this.largeSizes.delete(inode)
  }
  /** Uncounts one name of the inode; the names left. */
  unlink(inode: InodeId): number {
    return --this.inodeLinks[inode]!
  }
  linkTarget(inode: InodeId) {
    return this.linkTargets.get(inode)
  }
  setLinkTarget(inode: InodeId, target: string) {
    this.linkTargets.set(inode, target)
  }
  device(inode: InodeId) {
    return this.devices.get(inode)
  }
  setDevice(inode: InodeId, major: number, minor: number) {
    this.devices.set(inode, [major, minor])
  }
  xattrs(inode: InodeId): ReadonlyArray<readonly [name: string, value: Uint8Array]> {
    return this.xattrMap.get(inode) ?? []
  }
  setXattrs(inode: InodeId, xattrs: ReadonlyArray<readonly [name: string, value: Uint8Array]>) {
    if (xattrs.length === 0) this.xattrMap.delete(inode)
    else this.xattrMap.set(inode, xattrs)
  }
  content(inode: InodeId): StoredContent | undefined {
    switch (this.contentKind[inode]) {
      case PACKED:
        return this.packing!.unpack(this.size(inode), this.contentFirst[inode]!, this.contentSecond[inode]!)
      case OBJECT:
        return this.contentOf.get(inode)
      default:
        return undefined
    }
  }
  /** Call after `setSize`: a packed content's size is the inode's. */
  setContent(inode: InodeId, content: StoredContent | undefined) {
    this.contentOf.delete(inode)
    this.contentKind[inode] = NO_CONTENT
    if (content === undefined) return
    const packed = content.size === this.size(inode) ? this.packing?.pack(content) : undefined
    if (packed === undefined) {
      this.contentKind[inode] = OBJECT
      this.contentOf.set(inode, content)
      return
    }
    this.contentKind[inode] = PACKED
    this.contentFirst[inode] = packed[0]
    this.contentSecond[inode] = packed[1]
  }

  /** Relative path of an attached node; "" for the root. */
  pathOf(node: NodeId): string {
    const names: Array<string> = []
    for (let current = node; this.nodeParent[current] !== NONE; current = this.nodeParent[current]!) {
      names.push(this.nodeName[current]!)
    }
    return names.reverse().join("/")
  }

  /** False once the node or any ancestor has been removed from the tree. */
  isAttached(node: NodeId): boolean {
    let current = node
    while (this.nodeParent[current] !== NONE) current = this.nodeParent[current]!
    return current === this.root
  }

  /** Marks the node and its ancestors as `layer`'s (1-based); stops at the first already marked. */
  markAdded(node: NodeId, layer: number) {
    for (
      let current = node;
      current !== NONE && this.nodeMark[current] !== layer;
      current = this.nodeParent[current]!
    ) {
      this.nodeMark[current] = layer
    }
  }

  addedBy(node: NodeId, layer: number): boolean {
    return this.nodeMark[node] === layer
  }

  /**
   * Drops what only the application needs (the children maps, the layer marks) once the listing
   * is taken, and the arrays' unused tails: up to a third of each, ~9 MiB on a 500k-entry tree.
   */
  seal() {
    this.children.clear()
    this.nodeMark = new Int32Array(0)
    const nodes = this.nodeCount
    const inodes = this.inodeCount
    this.nodeParent = trimmed(this.nodeParent, nodes)
    this.nodeInode = trimmed(this.nodeInode, nodes)
    this.inodeType = trimmed(this.inodeType, inodes)
    this.inodeMode = trimmed(this.inodeMode, inodes)
    this.inodeUid = trimmed(this.inodeUid, inodes)
    this.inodeGid = trimmed(this.inodeGid, inodes)
    this.inodeMtime = trimmed(this.inodeMtime, inodes)
    this.inodeSize = trimmed(this.inodeSize, inodes)
    this.inodeLinks = trimmed(this.inodeLinks, inodes)
    this.contentKind = trimmed(this.contentKind, inodes)
    this.contentFirst = trimmed(this.contentFirst, inodes)
    this.contentSecond = trimmed(this.contentSecond, inodes)
  }
}
