/**
 * A flattened tree's entries read by index rather than held as one object each: the flatten's
 * compact model answers these from typed arrays, so a pull of 500k entries never holds 500k
 * `TreeEntry` objects and their path strings. Order and meaning are those of `FlatTree.entries`.
 */
import type { StoredContent } from "./content.js"
import type { EntryType, TreeEntry } from "./tree.js"

export interface EntryList {
  readonly length: number
  /** The last path component; "" for the root. */
  readonly name: (index: number) => string
  /** The directory entry holding this one, always at a lower index; -1 for the root. */
  readonly parent: (index: number) => number
  /** The first entry naming the same inode: `index` itself, unless this is a later hardlink. */
  readonly primary: (index: number) => number
  readonly type: (index: number) => EntryType
  readonly mode: (index: number) => number
  readonly uid: (index: number) => number
  readonly gid: (index: number) => number
  readonly mtime: (index: number) => number
  /** Content bytes for files, 0 for everything else. */
  readonly size: (index: number) => number
  readonly linkTarget: (index: number) => string | undefined
  readonly devMajor: (index: number) => number | undefined
  readonly devMinor: (index: number) => number | undefined
  readonly xattrs: (index: number) => ReadonlyArray<readonly [name: string, value: Uint8Array]>
  /** Where a file's contents went, on its primary entry. */
  readonly content: (index: number) => StoredContent | undefined
}

/** What the ext4 writer takes: a list, or plain entries (tests, trees read from a directory). */
export type FlatEntries = EntryList | ReadonlyArray<TreeEntry>

export const isEntryList = (entries: FlatEntries): entries is EntryList => !Array.isArray(entries)

export const pathAt = (list: EntryList, index: number): string => {
  const names: Array<string> = []
  for (let at = index; list.parent(at) >= 0; at = list.parent(at)) names.push(list.name(at))
  return names.reverse().join("/")
}

/** The entry at `index` as a `TreeEntry` (one object: for tests and small trees). */
export const entryAt = (list: EntryList, index: number, paths?: ReadonlyArray<string>): TreeEntry => {
  const path = paths?.[index] ?? pathAt(list, index)
  const primary = list.primary(index)
  const content = primary === index ? list.content(index) : undefined
  return {
    path,
    type: list.type(index),
    mode: list.mode(index),
    uid: list.uid(index),
    gid: list.gid(index),
    mtime: list.mtime(index),
    size: list.size(index),
    linkTarget: list.linkTarget(index),
    hardlinkTo: primary === index ? undefined : (paths?.[primary] ?? pathAt(list, primary)),
    devMajor: list.devMajor(index),
    devMinor: list.devMinor(index),
    xattrs: list.xattrs(index),
    ...(content !== undefined ? { content } : {})
  }
}

/** Every entry as a `TreeEntry`, in order. */
export const toTreeEntries = (list: EntryList): Array<TreeEntry> => {
  const paths: Array<string> = []
  const entries: Array<TreeEntry> = []
  for (let index = 0; index < list.length; index++) {
    const parent = list.parent(index)
    paths.push(parent < 0 ? "" : parent === 0 ? list.name(index) : `${paths[parent]}/${list.name(index)}`)
    entries.push(entryAt(list, index, paths))
  }
  return entries
}

const parentPath = (path: string) => path.slice(0, Math.max(path.lastIndexOf("/"), 0))

/**
 * Plain entries as a list; a string says why they are not a tree in `FlatTree` order (root first,
 * each parent and hardlink target earlier, no path twice).
 */
export const listEntries = (entries: ReadonlyArray<TreeEntry>): EntryList | string => {
  if (entries[0]?.path !== "" || entries[0].type !== "directory")
    return "the entries must start with the root directory"
  const fail = (entry: TreeEntry, reason: string) => `${JSON.stringify(entry.path)}: ${reason}`
  const byPath = new Map<string, number>()
  const parents = new Int32Array(entries.length)
  const primaries = new Int32Array(entries.length)
  for (const [index, entry] of entries.entries()) {
    if (byPath.has(entry.path)) return fail(entry, "listed twice")
    primaries[index] = index
    if (entry.hardlinkTo !== undefined) {
      const target = byPath.get(entry.hardlinkTo)
      if (target === undefined || entries[target]!.type === "directory") {
        return fail(
          entry,
          `hard link to ${JSON.stringify(entry.hardlinkTo)}, which is not an earlier non-directory entry`
        )
      }
      primaries[index] = primaries[target]!
    }
    byPath.set(entry.path, index)
    if (index === 0) {
      parents[0] = -1
      continue
    }
    const parent = byPath.get(parentPath(entry.path))
    if (parent === undefined || parent === index || entries[primaries[parent]!]!.type !== "directory") {
      return fail(entry, "its parent is not an earlier directory entry")
    }
    parents[index] = parent
  }
  // A hardlink's own header fields are not the inode's: its primary's are.
  const inode = (index: number) => entries[primaries[index]!]!
  return {
    length: entries.length,
    name: (index) => {
      const path = entries[index]!.path
      return path.slice(path.lastIndexOf("/") + 1)
    },
    parent: (index) => parents[index]!,
    primary: (index) => primaries[index]!,
    type: (index) => inode(index).type,
    mode: (index) => inode(index).mode,
    uid: (index) => inode(index).uid,
    gid: (index) => inode(index).gid,
    mtime: (index) => inode(index).mtime,
    size: (index) => inode(index).size,
    linkTarget: (index) => inode(index).linkTarget,
    devMajor: (index) => inode(index).devMajor,
    devMinor: (index) => inode(index).devMinor,
    xattrs: (index) => inode(index).xattrs,
    content: (index) => inode(index).content
  }
}

/** Plain entries, whichever form they came in. */
export const asTreeEntries = (entries: FlatEntries): ReadonlyArray<TreeEntry> =>
  isEntryList(entries) ? toTreeEntries(entries) : entries
