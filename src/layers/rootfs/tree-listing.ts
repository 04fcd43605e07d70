/**
 * The model's entries in `FlatTree` order: root first, depth-first with siblings in byte order of
 * their names, so parents precede children and the order is reproducible. The first name of a
 * hardlinked inode in this order is its primary. Three integers an entry; everything else is read
 * from the model.
 */
import type { EntryList } from "../../domain/entry-list.js"
import type { TreeModel } from "./tree-model.js"

// UTF-16 order is UTF-8 byte order except where surrogate pairs meet U+E000..U+FFFF.
const BEYOND_SIMPLE_ORDER = /[\ud800-\uffff]/

export const sortedByBytes = (names: Iterable<string>): Array<string> => {
  const list = [...names]
  if (!list.some((name) => BEYOND_SIMPLE_ORDER.test(name))) return list.sort()
  return list
    .map((name) => ({ name, bytes: Buffer.from(name) }))
    .sort((a, b) => Buffer.compare(a.bytes, b.bytes))
    .map(({ name }) => name)
}

export const listTree = (model: TreeModel): EntryList => {
  const order = new Int32Array(model.nodes)
  const parents = new Int32Array(model.nodes)
  const primaries = new Int32Array(model.nodes)
  const firstName = new Int32Array(model.inodes).fill(-1)
  let length = 0
  // Pairs of (node, index of its parent entry), next one last.
  const stack: Array<number> = [model.root, -1]
  while (stack.length > 0) {
    const parent = stack.pop()!
    const node = stack.pop()!
    const index = length++
    order[index] = node
    parents[index] = parent
    const inode = model.inodeOf(node)
    if (firstName[inode] === -1) firstName[inode] = index
    primaries[index] = firstName[inode]!
    const names = model.childNames(node)
    if (names === undefined) continue
    const sorted = sortedByBytes(names)
    for (let i = sorted.length - 1; i >= 0; i--) stack.push(model.child(node, sorted[i]!)!, index)
  }
  const inodeAt = (index: number) => model.inodeOf(order[index]!)
  return {
    length,
    name: (index) => model.nameOf(order[index]!),
    parent: (index) => parents[index]!,
    primary: (index) => primaries[index]!,
    type: (index) => model.typeOfInode(inodeAt(index)),
    mode: (index) => model.mode(inodeAt(index)),
    uid: (index) => model.uid(inodeAt(index)),
    gid: (index) => model.gid(inodeAt(index)),
    mtime: (index) => model.mtime(inodeAt(index)),
    size: (index) => {
      const inode = inodeAt(index)
      return model.typeOfInode(inode) === "file" ? model.size(inode) : 0
    },
    linkTarget: (index) => model.linkTarget(inodeAt(index)),
    devMajor: (index) => model.device(inodeAt(index))?.[0],
    devMinor: (index) => model.device(inodeAt(index))?.[1],
    xattrs: (index) => model.xattrs(inodeAt(index)),
    content: (index) => model.content(inodeAt(index))
  }
}
