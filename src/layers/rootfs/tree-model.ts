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
import { ExactUint32Array, PagedArray } from "./paged-array.js"

export type NodeId = number
export type InodeId = number

const TYPES: ReadonlyArray<EntryType> = ["file", "directory", "symlink", "char", "block", "fifo"]
const TYPE_CODE = new Map(TYPES.map((type, code) => [type, code]))
const DIRECTORY = TYPE_CODE.get("directory")!
const NONE = -1
const NO_CONTENT = 0
const PACKED = 1
const OBJECT = 2
/** Pages are 64k slots: a new number whose low 16 bits are 0 may need one more. */
const PAGE_CHECK = 0xffff

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
  private detaches = 0
  private inodeCount = 0
  private readonly nodeParent = new PagedArray((length) => new Int32Array(length))
  private readonly nodeInode = new PagedArray((length) => new Int32Array(length))
  /** The layer (1-based) that last added or touched each node: see `markAdded`. */
  private readonly nodeMark = new PagedArray((length) => new Int32Array(length))
  private readonly nodeName: Array<string> = []
  /** A directory node's children by name; only directories have one. */
  private readonly children = new Map<NodeId, Map<string, NodeId>>()

  private readonly inodeType = new PagedArray((length) => new Uint8Array(length))
  private readonly inodeMode = new PagedArray((length) => new Uint16Array(length))
  // Ids beyond 32 bits (the ext4 writer refuses them), times before 1970 or after 2106 and files
  // of 4 GiB or more are rare: they are kept beside the pages.
  private readonly inodeUid = new ExactUint32Array()
  private readonly inodeGid = new ExactUint32Array()
  private readonly inodeMtime = new ExactUint32Array()
  private readonly inodeSize = new ExactUint32Array()
  /** Names in the tree (attach counts them; removals through a content sink uncount them). */
  private readonly inodeLinks = new PagedArray((length) => new Int32Array(length))
  // Rare fields live in maps keyed by inode.
  private readonly linkTargets = new Map<InodeId, string>()
  private readonly devices = new Map<InodeId, readonly [major: number, minor: number]>()
  private readonly xattrMap = new Map<InodeId, ReadonlyArray<readonly [name: string, value: Uint8Array]>>()
  /** Where a file's contents went, when flattened into a content sink: packed, or an object. */
  private readonly contentKind = new PagedArray((length) => new Uint8Array(length))
  private readonly contentFirst = new PagedArray((length) => new Uint32Array(length))
  private readonly contentSecond = new PagedArray((length) => new Uint32Array(length))
  private readonly contentOf = new Map<InodeId, StoredContent>()
  private readonly perNode = [this.nodeParent, this.nodeInode, this.nodeMark]
  private readonly perInode = [
    this.inodeType,
    this.inodeMode,
    this.inodeUid,
    this.inodeGid,
    this.inodeMtime,
    this.inodeSize,
    this.inodeLinks,
    this.contentKind,
    this.contentFirst,
    this.contentSecond
  ]

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
    if ((inode & PAGE_CHECK) === 0) for (const array of this.perInode) array.ensure(inode + 1)
    this.contentKind.set(inode, NO_CONTENT)
    this.inodeType.set(inode, TYPE_CODE.get(type)!)
    this.setMeta(inode, meta)
    return inode
  }

  setMeta(inode: InodeId, meta: InodeMeta) {
    this.inodeMode.set(inode, meta.mode)
    this.inodeUid.set(inode, meta.uid)
    this.inodeGid.set(inode, meta.gid)
    this.inodeMtime.set(inode, meta.mtime)
  }

  private addNode(parent: NodeId, name: string, inode: InodeId): NodeId {
    const node = this.nodeCount++
    if ((node & PAGE_CHECK) === 0) for (const array of this.perNode) array.ensure(node + 1)
    this.nodeParent.set(node, parent)
    this.nodeInode.set(node, inode)
    this.nodeMark.set(node, 0)
    this.nodeName.push(name)
    this.inodeLinks.set(inode, this.inodeLinks.get(inode) + 1)
    if (this.inodeType.get(inode) === DIRECTORY) this.children.set(node, new Map())
    return node
  }

  /** A new name for `inode` in the directory `parent`, replacing nothing: detach first. */
  attach(parent: NodeId, name: string, inode: InodeId): NodeId {
    const own = ownCopy(name)
    const node = this.addNode(parent, own, inode)
    this.children.get(parent)!.set(own, node)
    return node
  }

  /** Counts detaches: a path resolved at one count resolves the same while it stays. */
  get generation() {
    return this.detaches
  }

  /** Takes the node and everything below it out of the tree. */
  detach(node: NodeId) {
    this.detaches++
    const parent = this.nodeParent.get(node)
    if (parent !== NONE) this.children.get(parent)?.delete(this.nodeName[node]!)
    this.nodeParent.set(node, NONE)
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
    const parent = this.nodeParent.get(node)
    return parent === NONE ? undefined : parent
  }

  nameOf(node: NodeId): string {
    return this.nodeName[node]!
  }

  inodeOf(node: NodeId): InodeId {
    return this.nodeInode.get(node)
  }

  typeOf(node: NodeId): EntryType {
    return TYPES[this.inodeType.get(this.nodeInode.get(node))]!
  }

  isDirectory(node: NodeId): boolean {
    return this.inodeType.get(this.nodeInode.get(node)) === DIRECTORY
  }

  typeOfInode(inode: InodeId): EntryType {
    return TYPES[this.inodeType.get(inode)]!
  }

  mode(inode: InodeId) {
    return this.inodeMode.get(inode)
  }
  uid(inode: InodeId) {
    return this.inodeUid.get(inode)
  }
  gid(inode: InodeId) {
    return this.inodeGid.get(inode)
  }
  mtime(inode: InodeId) {
    return this.inodeMtime.get(inode)
  }
  size(inode: InodeId) {
    return this.inodeSize.get(inode)
  }
  setSize(inode: InodeId, size: number) {
    this.inodeSize.set(inode, size)
  }
  /** Uncounts one name of the inode; the names left. */
  unlink(inode: InodeId): number {
    const links = this.inodeLinks.get(inode) - 1
    this.inodeLinks.set(inode, links)
    return links
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
    switch (this.contentKind.get(inode)) {
      case PACKED:
        return this.packing!.unpack(this.size(inode), this.contentFirst.get(inode), this.contentSecond.get(inode))
      case OBJECT:
        return this.contentOf.get(inode)
      default:
        return undefined
    }
  }
  /** Call after `setSize`: a packed content's size is the inode's. */
  setContent(inode: InodeId, content: StoredContent | undefined) {
    this.contentOf.delete(inode)
    this.contentKind.set(inode, NO_CONTENT)
    if (content === undefined) return
    const packed = content.size === this.size(inode) ? this.packing?.pack(content) : undefined
    if (packed === undefined) {
      this.contentKind.set(inode, OBJECT)
      this.contentOf.set(inode, content)
      return
    }
    this.contentKind.set(inode, PACKED)
    this.contentFirst.set(inode, packed[0])
    this.contentSecond.set(inode, packed[1])
  }

  /** Relative path of an attached node; "" for the root. */
  pathOf(node: NodeId): string {
    const names: Array<string> = []
    for (let current = node; this.nodeParent.get(current) !== NONE; current = this.nodeParent.get(current)) {
      names.push(this.nodeName[current]!)
    }
    return names.reverse().join("/")
  }

  /** False once the node or any ancestor has been removed from the tree. */
  isAttached(node: NodeId): boolean {
    let current = node
    while (this.nodeParent.get(current) !== NONE) current = this.nodeParent.get(current)
    return current === this.root
  }

  /** Marks the node and its ancestors as `layer`'s (1-based); stops at the first already marked. */
  markAdded(node: NodeId, layer: number) {
    for (
      let current = node;
      current !== NONE && this.nodeMark.get(current) !== layer;
      current = this.nodeParent.get(current)
    ) {
      this.nodeMark.set(current, layer)
    }
  }

  addedBy(node: NodeId, layer: number): boolean {
    return this.nodeMark.get(node) === layer
  }

  /** Drops what only the application needs (the children maps, the layer marks) once the listing is taken. */
  seal() {
    this.children.clear()
    this.nodeMark.clear()
  }
}
