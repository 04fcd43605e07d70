/**
 * Applies one layer (an OCI changeset) to the tree: entries replace what is at their path,
 * directories merge, whiteouts and opaque markers hide what lower layers put there. Every name
 * is normalized and resolved through the model before the disk is touched, and the disk path is
 * built from resolved real directories only, so no entry can reach outside the tree.
 *
 * The application itself is synchronous (model, disk and tar parsing alike) and works through the
 * bytes already decompressed; the only effect in the loop is pulling the next chunk when they run
 * out. Per-entry effects cost more than the work of most entries.
 */
import { Effect, Exit } from "effect"
import { ContentFailure } from "../../domain/content.js"
import type { DigestMismatch, FilesystemError, InvalidLayer, RegistryError } from "../../domain/errors.js"
import { UnsafeLayerEntry } from "../../domain/errors.js"
import type { EntryType } from "../../domain/tree.js"
import { DiskFailure } from "./disk-tree.js"
import { normalizeEntryPath } from "./entry-path.js"
import { type LayerReadError, openLayer } from "./layer-source.js"
import { resolveDirectory } from "./resolve.js"
import type { LayerFile } from "./rootfs-builder.js"
import { makeTarReader, NEED_MORE, type NeedMore, type TarEntry, TarFailure, type TarReader } from "./tar-reader.js"
import type { InodeId, NodeId, TreeModel } from "./tree-model.js"
import type { FileSink, TreeSink } from "./tree-sink.js"

export interface TreeState {
  /** Where contents (and, for a disk tree, everything else) go besides the model. */
  readonly sink: TreeSink
  readonly model: TreeModel
  /** Layers applied so far: numbers each layer's marks in the model. */
  layers: number
}

const WHITEOUT = ".wh."
const OPAQUE = ".wh..wh..opq"
// symlink(2) refuses longer targets; checking first keeps the error about the layer, not the disk.
const MAX_LINK_TARGET_BYTES = 4095

type ApplyError = UnsafeLayerEntry | InvalidLayer | FilesystemError | RegistryError | DigestMismatch

/** An unsafe entry, thrown out of the synchronous application. */
class Refused {
  constructor(readonly error: UnsafeLayerEntry) {}
}

/** A new inode with the entry's header fields. */
const inodeFrom = (model: TreeModel, entry: TarEntry, type: EntryType): InodeId => {
  const inode = model.newInode(type, entry)
  model.setXattrs(inode, entry.xattrs)
  return inode
}

const implicitDirectory = (mtime: number) => ({ mode: 0o755, uid: 0, gid: 0, mtime })

/** Gives an existing inode the entry's header fields, as a new one would have them. */
const overwrite = (model: TreeModel, inode: InodeId, entry: TarEntry) => {
  model.setMeta(inode, entry)
  model.setXattrs(inode, entry.xattrs)
}

/**
 * The raw name's directory part and last name, trailing slashes aside. The directory part is the
 * key of a resolved parent: the same string resolves the same way.
 */
const splitName = (name: string): readonly [directory: string, base: string] => {
  let end = name.length
  while (end > 0 && name.charCodeAt(end - 1) === 0x2f) end--
  const slash = end === 0 ? -1 : name.lastIndexOf("/", end - 1)
  return slash < 0 ? ["", name.slice(0, end)] : [name.slice(0, slash), name.slice(slash + 1, end)]
}

/** A resolved parent directory, valid while the model's generation is the same. */
interface ResolvedParent {
  readonly key: string
  readonly node: NodeId
  readonly generation: number
}

/** A regular file whose contents are still being written. */
interface OpenFile {
  readonly writer: FileSink
  readonly parent: NodeId
  readonly base: string
  readonly entry: TarEntry
  written: number
}

/** State of one layer's application. */
class LayerApplication {
  /** The file being written, if its data reaches past the bytes decompressed so far. */
  private open: OpenFile | undefined
  private readonly model: TreeModel
  /**
   * This layer's mark in the model: nodes it created or touched, with all their ancestors.
   * Whiteouts and opaque markers hide only what lower layers put there, so they must spare these,
   * whichever order the tar uses.
   */
  private readonly mark: number
  /**
   * The last resolved parent of an entry with a plain last name, by the raw directory part: most
   * entries share their predecessor's, and skip the walk from the root (up to 24 names on deep trees).
   */
  private lastParent: ResolvedParent | undefined
  /** The entry being applied, for `unsafe`. */
  private entry: TarEntry | undefined
  /** Refuses the entry being applied: one function per layer rather than one per entry. */
  private readonly unsafe = (reason: string): never => {
    throw new Refused(new UnsafeLayerEntry({ layer: this.layer, path: this.entry?.name ?? "", reason }))
  }

  constructor(
    private readonly tree: TreeState,
    private readonly layer: string
  ) {
    this.model = tree.model
    this.mark = ++tree.layers
  }

  private markAdded(node: NodeId) {
    this.model.markAdded(node, this.mark)
  }

  private remove(node: NodeId) {
    this.tree.sink.remove(node)
    this.model.detach(node)
  }

  /** Removes what lower layers contributed at and below `node`, keeping this layer's own entries. */
  private removeLower(node: NodeId): void {
    if (!this.model.addedBy(node, this.mark)) {
      this.remove(node)
      return
    }
    const children = this.model.childrenOf(node)
    if (children !== undefined) for (const child of [...children]) this.removeLower(child)
  }

  private attach(parent: NodeId, name: string, inode: InodeId) {
    this.markAdded(this.model.attach(parent, name, inode))
  }

  /**
   * Applies every entry it can with the bytes buffered: `NEED_MORE` when they run out (pull, then
   * call again to carry on where it stopped), `undefined` at the end of the archive.
   */
  run(tar: TarReader<LayerReadError>): undefined | NeedMore {
    while (true) {
      if (this.open !== undefined && this.writeData(this.open, tar) === NEED_MORE) return NEED_MORE
      const entry = tar.nextSync()
      if (entry === NEED_MORE || entry === undefined) return entry
      this.apply(entry)
    }
  }

  /** Closes the file left open by a failure or an interruption. */
  release() {
    if (this.open !== undefined) this.open.writer.abandon()
    this.open = undefined
  }

  private writeData(file: OpenFile, tar: TarReader<LayerReadError>): undefined | NeedMore {
    while (true) {
      const chunk = tar.readDataSync()
      if (chunk === NEED_MORE) return NEED_MORE
      if (chunk === undefined) break
      if (typeof chunk === "number") {
        file.writer.skip(chunk)
        file.written += chunk
        continue
      }
      file.writer.write(chunk)
      file.written += chunk.length
    }
    this.open = undefined
    const content = file.writer.finish()
    const inode = inodeFrom(this.model, file.entry, "file")
    this.model.setSize(inode, file.written)
    this.model.setContent(inode, content)
    this.attach(file.parent, file.base, inode)
    return undefined
  }

  private apply(entry: TarEntry) {
    this.entry = entry
    const unsafe = this.unsafe
    const model = this.model
    const [directory, rawBase] = splitName(entry.name)
    // Only a plain last name leaves the raw directory part naming the parent (`a/b/.` is a/b itself).
    const plain = rawBase !== "" && rawBase !== "." && rawBase !== ".." && !rawBase.startsWith(WHITEOUT)
    const last = this.lastParent
    let parent: NodeId
    let base: string | undefined
    if (plain && last?.key === directory && last.generation === model.generation && !entry.name.includes("\0")) {
      // The directory part was normalized and resolved for an entry before: only the last name is new.
      parent = last.node
      base = rawBase
    } else {
      const normalized = normalizeEntryPath(entry.name)
      if (normalized._tag === "Unsafe") return unsafe(normalized.reason)
      const components = normalized.components
      base = components.at(-1)
      if (base === undefined) return this.applyRoot(entry)
      if (base.startsWith(WHITEOUT)) return this.applyWhiteout(components.slice(0, -1), base, unsafe)
      parent = this.parentOf(entry, components, unsafe)
      if (plain) this.lastParent = { key: directory, node: parent, generation: model.generation }
    }
    const existing = model.child(parent, base)
    const sink = this.tree.sink

    switch (entry.type) {
      case "directory": {
        if (existing !== undefined && model.isDirectory(existing)) {
          // Directory over directory merges: children stay, the new header's metadata wins.
          overwrite(model, model.inodeOf(existing), entry)
          return this.markAdded(existing)
        }
        if (existing !== undefined) this.remove(existing)
        sink.directory(parent, base)
        return this.attach(parent, base, inodeFrom(model, entry, "directory"))
      }
      case "file": {
        if (existing !== undefined) this.remove(existing)
        // The node is attached once all the data is written (see writeData).
        this.open = { writer: sink.file(parent, base, entry.size, entry.sparse), parent, base, entry, written: 0 }
        return
      }
      case "symlink": {
        const target = entry.linkname
        if (target === "") return unsafe("symlink with an empty target")
        if (target.includes("\0")) return unsafe("symlink target contains a NUL byte")
        if (Buffer.byteLength(target) > MAX_LINK_TARGET_BYTES) {
          return unsafe("symlink target is longer than 4095 bytes")
        }
        if (existing !== undefined) this.remove(existing)
        sink.symlink(parent, base, target)
        const inode = inodeFrom(model, entry, "symlink")
        model.setLinkTarget(inode, target)
        return this.attach(parent, base, inode)
      }
      case "char":
      case "block":
      case "fifo": {
        if (existing !== undefined) this.remove(existing)
        sink.special(parent, base)
        const inode = inodeFrom(model, entry, entry.type)
        if (entry.type !== "fifo") model.setDevice(inode, entry.devMajor, entry.devMinor)
        return this.attach(parent, base, inode)
      }
      case "link":
        return this.applyHardlink(entry, parent, base, existing, unsafe)
    }
  }

  private parentOf(entry: TarEntry, components: ReadonlyArray<string>, unsafe: (reason: string) => never): NodeId {
    const model = this.model
    const resolved = resolveDirectory({
      model,
      components: components.slice(0, -1),
      missing: (parent, name) => {
        this.tree.sink.directory(parent, name)
        const made = model.attach(parent, name, model.newInode("directory", implicitDirectory(entry.mtime)))
        this.markAdded(made)
        return made
      },
      unresolvable: (reason) => unsafe(`${reason} in its parent path`)
    })
    if (resolved._tag !== "Directory") {
      return unsafe(
        resolved._tag === "NotDirectory" ? `parent "${resolved.path}" is not a directory` : "parent missing"
      )
    }
    return resolved.node
  }

  private applyRoot(entry: TarEntry) {
    // containerd ignores whatever names the root; a directory's metadata is the root's own here.
    if (entry.type !== "directory") return
    overwrite(this.model, this.model.inodeOf(this.model.root), entry)
    this.markAdded(this.model.root)
  }

  private applyWhiteout(directory: ReadonlyArray<string>, base: string, unsafe: (reason: string) => never) {
    const hidden = base.slice(WHITEOUT.length)
    if (base !== OPAQUE && (hidden === "" || hidden === "." || hidden === "..")) {
      return unsafe("whiteout of an invalid name")
    }
    const model = this.model
    const resolved = resolveDirectory({
      model,
      components: directory,
      missing: () => undefined,
      unresolvable: (reason) => unsafe(`${reason} in its parent path`)
    })
    // Nothing below to hide when the directory does not exist (or is not one).
    if (resolved._tag !== "Directory") return
    const parent = resolved.node
    if (base === OPAQUE) {
      for (const child of [...model.childrenOf(parent)!]) this.removeLower(child)
      return
    }
    const target = model.child(parent, hidden)
    if (target !== undefined) this.removeLower(target)
  }

  private applyHardlink(
    entry: TarEntry,
    parent: NodeId,
    base: string,
    existing: NodeId | undefined,
    unsafe: (reason: string) => never
  ) {
    const normalized = normalizeEntryPath(entry.linkname)
    if (normalized._tag === "Unsafe") return unsafe(`hardlink target: ${normalized.reason}`)
    const targetName = normalized.components.at(-1)
    if (targetName === undefined) return unsafe("hardlink to the root")
    // Like link(2): the target's parents resolve (inside the root), its last component does not.
    const model = this.model
    const resolved = resolveDirectory({
      model,
      components: normalized.components.slice(0, -1),
      missing: () => undefined,
      unresolvable: (reason) => unsafe(`${reason} in the hardlink target`)
    })
    const target = resolved._tag === "Directory" ? model.child(resolved.node, targetName) : undefined
    if (target === undefined) return unsafe(`hardlink target "${entry.linkname}" does not exist`)
    if (model.isDirectory(target)) return unsafe("hardlink to a directory")
    const inode = model.inodeOf(target)
    let node = target
    if (target !== existing) {
      if (existing !== undefined) this.remove(existing)
      if (!model.isAttached(target)) return unsafe("hardlink target is removed by this very entry")
      this.tree.sink.hardlink(target, parent, base)
      node = model.attach(parent, base, inode)
    }
    // As Docker and containerd do, the link's header describes the shared inode (usually it
    // repeats it); xattrs it carries are set on top of those already there.
    model.setMeta(inode, {
      mode: model.typeOfInode(inode) === "symlink" ? model.mode(inode) : entry.mode,
      uid: entry.uid,
      gid: entry.gid,
      mtime: entry.mtime
    })
    if (entry.xattrs.length > 0) model.setXattrs(inode, [...new Map([...model.xattrs(inode), ...entry.xattrs])])
    this.markAdded(node)
  }
}

/** Runs the synchronous application, pulling whenever it has worked through the buffered bytes. */
const applyAll = (application: LayerApplication, tar: TarReader<LayerReadError>): Effect.Effect<void, ApplyError> =>
  Effect.suspend(function step(): Effect.Effect<void, ApplyError> {
    let result: undefined | NeedMore
    try {
      result = application.run(tar)
    } catch (error) {
      if (
        error instanceof TarFailure ||
        error instanceof DiskFailure ||
        error instanceof ContentFailure ||
        error instanceof Refused
      ) {
        return Effect.fail(error.error as ApplyError)
      }
      throw error
    }
    return result === NEED_MORE ? Effect.flatMap(tar.fill, step) : Effect.void
  })

/**
 * Streams one layer into the tree, then checks its DiffID (after the last byte, necessarily). A
 * layer still downloading that fails reports the download's failure when there is one: that is the
 * cause (a corrupt blob can fail gunzip before the download gets to check its digest).
 */
export const applyLayer = (
  tree: TreeState,
  layer: LayerFile,
  maxUncompressedBytes: number
): Effect.Effect<void, ApplyError> => {
  const applied = Effect.scoped(
    Effect.gen(function* () {
      const source = yield* openLayer(layer, maxUncompressedBytes)
      const tar = makeTarReader(source.bytes, layer.digest)
      const application = new LayerApplication(tree, layer.digest)
      yield* applyAll(application, tar).pipe(Effect.ensuring(Effect.sync(() => application.release())))
      yield* source.verify
    })
  )
  const download = layer.download
  if (download === undefined) return applied
  return Effect.catchAll(applied, (error) =>
    Effect.flatMap(Effect.exit(download.done), (exit) => (Exit.isFailure(exit) ? exit : Effect.fail(error)))
  )
}
