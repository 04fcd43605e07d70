import type { CommandExecutor, FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { Ext4Error } from "../../domain/errors.js"
import type { TreeEntry } from "../../domain/tree.js"
import { expressible, inodeSpec, lineFits, quote, S_IFMT, typeBits } from "./debugfs-script.js"
import { type ListedEntry, listCommand, listDirectories } from "./listing.js"

/** One name of an inode in the freshly made image. */
export interface InodeName {
  readonly path: string
  readonly parentIno: number
  readonly name: string
}

/** One inode of the image with every name it has and the entry whose metadata it must carry. */
export interface ResolvedInode {
  readonly ino: number
  readonly entry: TreeEntry
  readonly names: ReadonlyArray<InodeName>
  /** Mode and owner mkfs gave the inode (root excepted: never listed, always rewritten). */
  readonly listed: ListedEntry | undefined
  /**
   * Later names of a hard-linked symlink: mkfs -d never links symlinks and gave each its own inode,
   * which must be dropped and the name pointed at `ino`.
   */
  readonly relinked: ReadonlyArray<{ readonly ino: number; readonly name: InodeName }>
}

const ROOT_INO = 2
const LOST_FOUND_INO = 11

const parentOf = (path: string) => {
  const slash = path.lastIndexOf("/")
  return slash < 0 ? "" : path.slice(0, slash)
}

const baseName = (path: string) => path.slice(path.lastIndexOf("/") + 1)

const join = (dir: string, name: string) => (dir === "" ? name : `${dir}/${name}`)

const fail = (reason: string) => new Ext4Error({ tool: "debugfs", reason, stderr: "" })

/** The file type mkfs -d makes for an entry: devices and fifos arrive as regular placeholders. */
const acceptsType = (entry: TreeEntry, mode: number) => {
  const type = mode & S_IFMT
  switch (entry.type) {
    case "directory":
    case "symlink":
    case "file":
      return type === typeBits[entry.type]
    default:
      return type === typeBits.file || type === typeBits[entry.type]
  }
}

/**
 * Finds the inode mkfs gave every entry by listing each directory of the image. Directories are
 * listed by path in one debugfs run; one whose path cannot be written in a script (a newline in a
 * name, a path too long for a line) is listed by inode number in a later run, once its parent's
 * listing has named that number. The tree on disk and the entries must agree exactly: a missing or
 * extra name, a wrong type or size, or inodes shared differently than `hardlinkTo` says all fail.
 */
export const resolveInodes = Effect.fn("ext4.resolveInodes")(function* (
  image: string,
  entries: ReadonlyArray<TreeEntry>,
  workDir: string
): Effect.fn.Return<Array<ResolvedInode>, Ext4Error, CommandExecutor.CommandExecutor | FileSystem.FileSystem> {
  const byPath = new Map<string, TreeEntry>()
  for (const entry of entries) {
    if (byPath.has(entry.path)) return yield* fail(`duplicate entry "${entry.path}"`)
    byPath.set(entry.path, entry)
  }
  const root = byPath.get("")
  if (root === undefined || root.type !== "directory") return yield* fail("entries have no root directory")
  for (const entry of entries) {
    if (entry.path === "") continue
    const parent = byPath.get(parentOf(entry.path))
    if (parent === undefined || parent.type !== "directory") {
      return yield* fail(`entry "${entry.path}" has no parent directory in the entries`)
    }
  }

  const found = new Map<string, ListedEntry>()
  found.set("", { ino: ROOT_INO, mode: typeBits.directory, uid: 0, gid: 0, name: "", size: undefined })
  let pending = entries.filter((entry) => entry.type === "directory")
  while (pending.length > 0) {
    const batch: Array<{ readonly path: string; readonly spec: string }> = []
    const later: Array<TreeEntry> = []
    for (const dir of pending) {
      const known = found.get(dir.path)
      const byName = quote(`/${dir.path}`)
      if (known !== undefined) batch.push({ path: dir.path, spec: inodeSpec(known.ino) })
      else if (expressible(dir.path) && lineFits(listCommand(byName))) batch.push({ path: dir.path, spec: byName })
      else later.push(dir)
    }
    if (batch.length === 0) {
      return yield* fail(`directory "${pending[0]!.path}" is missing from the tree directory`)
    }
    const listings = yield* listDirectories(
      image,
      batch.map((dir) => dir.spec),
      workDir
    )
    for (const [index, listing] of listings.entries()) {
      const dir = batch[index]!
      if (listing._tag === "Failed") {
        return yield* fail(`directory "${dir.path}" is missing from the tree directory: ${listing.message}`)
      }
      for (const child of listing.entries) {
        const path = join(dir.path, child.name)
        if (dir.path === "" && child.name === "lost+found" && child.ino === LOST_FOUND_INO && !byPath.has(path)) {
          continue
        }
        if (!byPath.has(path)) return yield* fail(`"${path}" is in the tree directory but not in the entries`)
        found.set(path, child)
      }
    }
    // A directory that was in no listing yet waits for its parent's; one whose parent was listed
    // without it is missing.
    const listed = new Set(batch.map((dir) => dir.path))
    for (const dir of later) {
      if (listed.has(parentOf(dir.path)) && !found.has(dir.path)) {
        return yield* fail(`directory "${dir.path}" is missing from the tree directory`)
      }
    }
    pending = later
  }

  const inodes = new Map<
    number,
    {
      entry: TreeEntry
      names: Array<InodeName>
      listed: ListedEntry | undefined
      relinked: Array<{ readonly ino: number; readonly name: InodeName }>
    }
  >()
  for (const entry of entries) {
    const listed = found.get(entry.path)
    if (listed === undefined) return yield* fail(`"${entry.path}" is missing from the tree directory`)
    if (!acceptsType(entry, listed.mode)) {
      return yield* fail(`"${entry.path}" is a ${entry.type} in the entries but not in the tree directory`)
    }
    if (entry.type === "file" && listed.size !== entry.size) {
      return yield* fail(
        `"${entry.path}" holds ${listed.size} bytes in the tree directory, ${entry.size} in the entries`
      )
    }
    const name: InodeName =
      entry.path === ""
        ? { path: "", parentIno: ROOT_INO, name: "" }
        : { path: entry.path, parentIno: found.get(parentOf(entry.path))!.ino, name: baseName(entry.path) }
    if (entry.hardlinkTo !== undefined) {
      const target = found.get(entry.hardlinkTo)
      const group = target === undefined ? undefined : inodes.get(target.ino)
      if (target !== undefined && group !== undefined && target.ino !== listed.ino && entry.type === "symlink") {
        if (group.entry.type !== "symlink") {
          return yield* fail(
            `hard link "${entry.path}" is a symlink but "${group.entry.path}" is a ${group.entry.type}`
          )
        }
        group.names.push(name)
        group.relinked.push({ ino: listed.ino, name })
        continue
      }
      if (target?.ino !== listed.ino) {
        return yield* fail(`"${entry.path}" should be a hard link to "${entry.hardlinkTo}" but is not one in the tree`)
      }
    }
    const inode = inodes.get(listed.ino)
    if (inode === undefined) {
      inodes.set(listed.ino, { entry, names: [name], listed: entry.path === "" ? undefined : listed, relinked: [] })
      continue
    }
    if (entry.hardlinkTo === undefined) {
      return yield* fail(`"${inode.entry.path}" and "${entry.path}" share an inode in the tree but are not linked`)
    }
    if (entry.type !== inode.entry.type) {
      return yield* fail(
        `hard link "${entry.path}" is a ${entry.type} but "${inode.entry.path}" is a ${inode.entry.type}`
      )
    }
    inode.names.push(name)
  }
  return [...inodes.entries()].map(([ino, inode]) => ({ ino, ...inode })).sort((a, b) => a.ino - b.ino)
})
