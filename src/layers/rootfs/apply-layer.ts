/**
 * Applies one layer (an OCI changeset) to the tree: entries replace what is at their path,
 * directories merge, whiteouts and opaque markers hide what lower layers put there. Every name
 * is normalized and resolved through the model before the disk is touched, and the disk path is
 * built from resolved real directories only, so no entry can reach outside the tree.
 */
import { Effect } from "effect"
import type { DigestMismatch, FilesystemError, InvalidLayer } from "../../domain/errors.js"
import { UnsafeLayerEntry } from "../../domain/errors.js"
import type { EntryType } from "../../domain/tree.js"
import * as Disk from "./disk-tree.js"
import { normalizeEntryPath } from "./entry-path.js"
import { type LayerInput, openLayer } from "./layer-source.js"
import { resolveDirectory } from "./resolve.js"
import { makeTarReader, type TarEntry } from "./tar-reader.js"
import { attach, detach, type Inode, isAttached, pathOf, type TreeNode } from "./tree-model.js"

export interface TreeState {
  /** The directory on disk that mirrors `root`. */
  readonly dir: string
  readonly root: TreeNode
}

const WHITEOUT = ".wh."
const OPAQUE = ".wh..wh..opq"
const WHITEOUT_META = ".wh..wh."
// symlink(2) refuses longer targets; checking first keeps the error about the layer, not the disk.
const MAX_LINK_TARGET_BYTES = 4095

type ApplyError = UnsafeLayerEntry | InvalidLayer | FilesystemError

const diskPath = (tree: TreeState, node: TreeNode) => {
  const relative = pathOf(node)
  return relative === "" ? tree.dir : `${tree.dir}/${relative}`
}

const childDiskPath = (tree: TreeState, parent: TreeNode, name: string) => `${diskPath(tree, parent)}/${name}`

const inodeFrom = (entry: TarEntry, type: EntryType, extra: Partial<Inode> = {}): Inode => ({
  type,
  mode: entry.mode,
  uid: entry.uid,
  gid: entry.gid,
  mtime: entry.mtime,
  size: 0,
  linkTarget: undefined,
  devMajor: undefined,
  devMinor: undefined,
  xattrs: entry.xattrs,
  ...extra
})

const implicitDirectory = (mtime: number): Inode => ({
  type: "directory",
  mode: 0o755,
  uid: 0,
  gid: 0,
  mtime,
  size: 0,
  linkTarget: undefined,
  devMajor: undefined,
  devMinor: undefined,
  xattrs: []
})

/** State of one layer's application. */
class LayerApplication {
  /**
   * Nodes this layer created or touched, with all their ancestors. Whiteouts and opaque markers
   * hide only what lower layers put there, so they must spare these, whichever order the tar uses.
   */
  private readonly added = new Set<TreeNode>()

  constructor(
    private readonly tree: TreeState,
    private readonly layer: string
  ) {}

  private markAdded(node: TreeNode) {
    for (let current: TreeNode | undefined = node; current && !this.added.has(current); current = current.parent) {
      this.added.add(current)
    }
  }

  private remove(node: TreeNode) {
    return Effect.gen(this, function* () {
      yield* Disk.removeEntry(diskPath(this.tree, node), node.inode.type === "directory")
      detach(node)
    })
  }

  /** Removes what lower layers contributed at and below `node`, keeping this layer's own entries. */
  private removeLower(node: TreeNode): Effect.Effect<void, FilesystemError> {
    return Effect.gen(this, function* () {
      if (!this.added.has(node)) return yield* this.remove(node)
      if (node.children === undefined) return
      for (const child of [...node.children.values()]) yield* this.removeLower(child)
    })
  }

  apply(entry: TarEntry, readData: Effect.Effect<Uint8Array | undefined, InvalidLayer | FilesystemError>) {
    return Effect.gen(this, function* () {
      const unsafe = (reason: string) => new UnsafeLayerEntry({ layer: this.layer, path: entry.name, reason })
      const normalized = normalizeEntryPath(entry.name)
      if (normalized._tag === "Unsafe") return yield* Effect.fail(unsafe(normalized.reason))
      const components = normalized.components
      // Entries inside a `.wh.*` directory are aufs bookkeeping (e.g. `.wh..wh.plnk/`), not content.
      if (components.slice(0, -1).some((name) => name.startsWith(WHITEOUT))) return
      const base = components.at(-1)
      if (base === undefined) return yield* this.applyRoot(entry, unsafe)
      if (base.startsWith(WHITEOUT)) return yield* this.applyWhiteout(components.slice(0, -1), base, unsafe)

      const resolved = yield* resolveDirectory<UnsafeLayerEntry | FilesystemError>({
        root: this.tree.root,
        components: components.slice(0, -1),
        missing: (parent, name) =>
          Effect.gen(this, function* () {
            yield* Disk.makeDirectory(childDiskPath(this.tree, parent, name))
            const made = attach(parent, name, implicitDirectory(entry.mtime))
            this.markAdded(made)
            return made
          }),
        unresolvable: (reason) => unsafe(`${reason} in its parent path`)
      })
      if (resolved._tag !== "Directory") {
        return yield* Effect.fail(
          unsafe(resolved._tag === "NotDirectory" ? `parent "${resolved.path}" is not a directory` : "parent missing")
        )
      }
      const parent = resolved.node
      const existing = parent.children!.get(base)
      const path = childDiskPath(this.tree, parent, base)

      switch (entry.type) {
        case "directory": {
          if (existing?.inode.type === "directory") {
            // Directory over directory merges: children stay, the new header's metadata wins.
            Object.assign(existing.inode, inodeFrom(entry, "directory"))
            return this.markAdded(existing)
          }
          if (existing) yield* this.remove(existing)
          yield* Disk.makeDirectory(path)
          return this.markAdded(attach(parent, base, inodeFrom(entry, "directory")))
        }
        case "file": {
          if (existing) yield* this.remove(existing)
          const size = yield* Disk.writeFile(path, readData)
          return this.markAdded(attach(parent, base, inodeFrom(entry, "file", { size })))
        }
        case "symlink": {
          const target = entry.linkname
          if (target === "") return yield* Effect.fail(unsafe("symlink with an empty target"))
          if (target.includes("\0")) return yield* Effect.fail(unsafe("symlink target contains a NUL byte"))
          if (Buffer.byteLength(target) > MAX_LINK_TARGET_BYTES) {
            return yield* Effect.fail(unsafe("symlink target is longer than 4095 bytes"))
          }
          if (existing) yield* this.remove(existing)
          // Stored verbatim and never resolved here: it means something only inside the VM.
          yield* Disk.makeSymlink(target, path)
          return this.markAdded(attach(parent, base, inodeFrom(entry, "symlink", { linkTarget: target })))
        }
        case "char":
        case "block":
        case "fifo": {
          if (existing) yield* this.remove(existing)
          // A plain empty file stands in; the ext4 step makes the real node from the metadata.
          yield* Disk.makePlaceholder(path)
          const device = entry.type === "fifo" ? {} : { devMajor: entry.devMajor, devMinor: entry.devMinor }
          return this.markAdded(attach(parent, base, inodeFrom(entry, entry.type, device)))
        }
        case "link":
          return yield* this.applyHardlink(entry, parent, base, existing, unsafe)
      }
    })
  }

  private applyRoot(entry: TarEntry, unsafe: (reason: string) => UnsafeLayerEntry) {
    return Effect.gen(this, function* () {
      if (entry.type !== "directory") return yield* Effect.fail(unsafe("the root can only be a directory"))
      Object.assign(this.tree.root.inode, inodeFrom(entry, "directory"))
      this.markAdded(this.tree.root)
    })
  }

  private applyWhiteout(directory: ReadonlyArray<string>, base: string, unsafe: (reason: string) => UnsafeLayerEntry) {
    return Effect.gen(this, function* () {
      const hidden = base.slice(WHITEOUT.length)
      if (base !== OPAQUE && (hidden === "" || hidden === "." || hidden === "..")) {
        return yield* Effect.fail(unsafe("whiteout of an invalid name"))
      }
      const resolved = yield* resolveDirectory({
        root: this.tree.root,
        components: directory,
        missing: () => Effect.succeed(undefined),
        unresolvable: (reason) => unsafe(`${reason} in its parent path`)
      })
      // Nothing below to hide when the directory does not exist (or is not one).
      if (resolved._tag !== "Directory") return
      const parent = resolved.node
      if (base === OPAQUE) {
        for (const child of [...parent.children!.values()]) yield* this.removeLower(child)
        return
      }
      // Other `.wh..wh.*` names are aufs metadata with nothing to hide.
      if (base.startsWith(WHITEOUT_META)) return
      const target = parent.children!.get(hidden)
      if (target) yield* this.removeLower(target)
    })
  }

  private applyHardlink(
    entry: TarEntry,
    parent: TreeNode,
    base: string,
    existing: TreeNode | undefined,
    unsafe: (reason: string) => UnsafeLayerEntry
  ) {
    return Effect.gen(this, function* () {
      const normalized = normalizeEntryPath(entry.linkname)
      if (normalized._tag === "Unsafe") return yield* Effect.fail(unsafe(`hardlink target: ${normalized.reason}`))
      const targetName = normalized.components.at(-1)
      if (targetName === undefined) return yield* Effect.fail(unsafe("hardlink to the root"))
      // Like link(2): the target's parents resolve (inside the root), its last component does not.
      const resolved = yield* resolveDirectory({
        root: this.tree.root,
        components: normalized.components.slice(0, -1),
        missing: () => Effect.succeed(undefined),
        unresolvable: (reason) => unsafe(`${reason} in the hardlink target`)
      })
      const target = resolved._tag === "Directory" ? resolved.node.children!.get(targetName) : undefined
      if (target === undefined) {
        return yield* Effect.fail(unsafe(`hardlink target "${entry.linkname}" does not exist`))
      }
      if (target.inode.type === "directory") return yield* Effect.fail(unsafe("hardlink to a directory"))
      let node = target
      if (target !== existing) {
        if (existing) yield* this.remove(existing)
        if (!isAttached(target, this.tree.root)) {
          return yield* Effect.fail(unsafe("hardlink target is removed by this very entry"))
        }
        yield* Disk.makeHardlink(diskPath(this.tree, target), childDiskPath(this.tree, parent, base))
        node = attach(parent, base, target.inode)
      }
      // As Docker and containerd do, the link's header describes the shared inode (usually it
      // repeats it); xattrs it carries are set on top of those already there.
      const inode = target.inode
      if (inode.type !== "symlink") inode.mode = entry.mode
      inode.uid = entry.uid
      inode.gid = entry.gid
      inode.mtime = entry.mtime
      if (entry.xattrs.length > 0) inode.xattrs = [...new Map([...inode.xattrs, ...entry.xattrs])]
      this.markAdded(node)
    })
  }
}

/** Streams one layer into the tree, then checks its DiffID (after the last byte, necessarily). */
export const applyLayer = (
  tree: TreeState,
  layer: LayerInput,
  maxUncompressedBytes: number
): Effect.Effect<void, ApplyError | DigestMismatch> =>
  Effect.scoped(
    Effect.gen(function* () {
      const source = yield* openLayer(layer, maxUncompressedBytes)
      const tar = makeTarReader(source.bytes, layer.digest)
      const application = new LayerApplication(tree, layer.digest)
      while (true) {
        const entry = yield* tar.next
        if (entry === undefined) break
        yield* application.apply(entry, tar.readData)
      }
      yield* source.verify
    })
  )
