/**
 * The in-memory model of the rootfs being built: a tree of names whose leaves point at inodes.
 * It is the authority on what every path is; the disk tree only mirrors contents. Hardlinked
 * names share one `Inode` object, so a metadata change reaches every name, as on a filesystem.
 * Memory is one node per entry, whatever the file sizes.
 */
import type { StoredContent } from "../../domain/content.js"
import type { EntryType, TreeEntry } from "../../domain/tree.js"

export interface Inode {
  type: EntryType
  mode: number
  uid: number
  gid: number
  mtime: number
  size: number
  linkTarget: string | undefined
  devMajor: number | undefined
  devMinor: number | undefined
  xattrs: ReadonlyArray<readonly [name: string, value: Uint8Array]>
  /** Names in the tree (attach counts them; removals through a content sink uncount them). */
  links: number
  /** Where a file's contents went, when flattened into a content sink. */
  content: StoredContent | undefined
}

export class TreeNode {
  /** Present exactly for directories. */
  readonly children: Map<string, TreeNode> | undefined
  constructor(
    readonly name: string,
    public parent: TreeNode | undefined,
    readonly inode: Inode
  ) {
    this.children = inode.type === "directory" ? new Map() : undefined
  }
}

/** An inode with only its type, mode and mtime: root-owned, empty, no names yet. */
export const blankInode = (type: EntryType, mode: number, mtime = 0): Inode => ({
  type,
  mode,
  uid: 0,
  gid: 0,
  mtime,
  size: 0,
  linkTarget: undefined,
  devMajor: undefined,
  devMinor: undefined,
  xattrs: [],
  links: 0,
  content: undefined
})

export const makeRoot = (): TreeNode => new TreeNode("", undefined, blankInode("directory", 0o755))

/** Relative path of an attached node; "" for the root. */
export const pathOf = (node: TreeNode): string => {
  const names: Array<string> = []
  for (let current: TreeNode | undefined = node; current?.parent !== undefined; current = current.parent) {
    names.push(current.name)
  }
  return names.reverse().join("/")
}

/** False once the node or any ancestor has been removed from the tree. */
export const isAttached = (node: TreeNode, root: TreeNode): boolean => {
  let current = node
  while (current.parent !== undefined) current = current.parent
  return current === root
}

export const attach = (parent: TreeNode, name: string, inode: Inode): TreeNode => {
  const node = new TreeNode(name, parent, inode)
  inode.links++
  parent.children!.set(name, node)
  return node
}

export const detach = (node: TreeNode): void => {
  node.parent?.children?.delete(node.name)
  node.parent = undefined
}

// UTF-16 order is UTF-8 byte order except where surrogate pairs meet U+E000..U+FFFF.
const BEYOND_SIMPLE_ORDER = /[\ud800-\uffff]/

const sortedByBytes = (names: Iterable<string>): Array<string> => {
  const list = [...names]
  if (!list.some((name) => BEYOND_SIMPLE_ORDER.test(name))) return list.sort()
  return list
    .map((name) => ({ name, bytes: Buffer.from(name) }))
    .sort((a, b) => Buffer.compare(a.bytes, b.bytes))
    .map(({ name }) => name)
}

/**
 * Every entry, root first, depth-first with siblings in byte order of their names, so parents
 * precede children and the order is reproducible. The first name of a hardlinked inode in this
 * order is its primary; later names point at it with `hardlinkTo`.
 */
export const toEntries = (root: TreeNode): Array<TreeEntry> => {
  const entries: Array<TreeEntry> = []
  const primary = new Map<Inode, string>()
  const stack: Array<{ readonly node: TreeNode; readonly path: string }> = [{ node: root, path: "" }]
  while (stack.length > 0) {
    const { node, path } = stack.pop()!
    const inode = node.inode
    const first = primary.get(inode)
    if (first === undefined) primary.set(inode, path)
    entries.push({
      path,
      type: inode.type,
      mode: inode.mode,
      uid: inode.uid,
      gid: inode.gid,
      mtime: inode.mtime,
      size: inode.type === "file" ? inode.size : 0,
      linkTarget: inode.linkTarget,
      hardlinkTo: first,
      devMajor: inode.devMajor,
      devMinor: inode.devMinor,
      xattrs: inode.xattrs,
      ...(inode.content !== undefined && first === undefined ? { content: inode.content } : {})
    })
    if (node.children !== undefined) {
      const names = sortedByBytes(node.children.keys()).reverse()
      for (const name of names) {
        stack.push({ node: node.children.get(name)!, path: path === "" ? name : `${path}/${name}` })
      }
    }
  }
  return entries
}
