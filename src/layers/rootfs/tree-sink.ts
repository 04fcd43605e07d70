/**
 * What applying a layer does besides updating the model: mirror it into a directory on disk
 * (`diskSink`, for `flatten`), or send file contents to a content sink such as an image draft
 * (`contentSinkFor`, for `flattenInto`), where every other change lives in the model alone.
 * Calls are synchronous and throw `DiskFailure` or `ContentFailure`.
 */
import type { ContentSink, StoredContent } from "../../domain/content.js"
import * as Disk from "./disk-tree.js"
import type { NodeId, TreeModel } from "./tree-model.js"

export interface FileSink {
  readonly write: (chunk: Uint8Array) => void
  /** A hole of `length` zero bytes (sparse files only). */
  readonly skip: (length: number) => void
  /** The stored contents, when the sink keeps them somewhere the model must remember. */
  readonly finish: () => StoredContent | undefined
  readonly abandon: () => void
}

export interface TreeSink {
  readonly directory: (parent: NodeId, name: string) => void
  readonly file: (parent: NodeId, name: string, size: number, sparse: ReadonlyArray<number> | undefined) => FileSink
  readonly symlink: (parent: NodeId, name: string, target: string) => void
  /** A device or fifo. */
  readonly special: (parent: NodeId, name: string) => void
  readonly hardlink: (target: NodeId, parent: NodeId, name: string) => void
  /** Called before `node` (and everything below it) leaves the model. */
  readonly remove: (node: NodeId) => void
}

export const diskSink = (model: TreeModel, dir: string): TreeSink => {
  const at = (node: NodeId) => {
    const relative = model.pathOf(node)
    return relative === "" ? dir : `${dir}/${relative}`
  }
  const child = (parent: NodeId, name: string) => `${at(parent)}/${name}`
  return {
    directory: (parent, name) => Disk.makeDirectory(child(parent, name)),
    file: (parent, name, size, sparse) => {
      const path = child(parent, name)
      const fd = Disk.createFile(path)
      let closed = false
      const close = () => {
        if (!closed) Disk.closeFile(fd)
        closed = true
      }
      // A sparse file's holes are skipped over and the size set at the end, so they stay holes.
      let position = 0
      return {
        write: (chunk) => {
          if (sparse === undefined) Disk.writeAll(fd, path, chunk)
          else Disk.writeAllAt(fd, path, chunk, position)
          position += chunk.length
        },
        skip: (length) => {
          position += length
        },
        finish: () => {
          if (sparse !== undefined) Disk.truncate(fd, path, size)
          close()
          return undefined
        },
        abandon: close
      }
    },
    // Stored verbatim and never resolved here: it means something only inside the VM.
    symlink: (parent, name, target) => Disk.makeSymlink(target, child(parent, name)),
    // A plain empty file stands in; the ext4 step makes the real node from the metadata.
    special: (parent, name) => Disk.makePlaceholder(child(parent, name)),
    hardlink: (target, parent, name) => Disk.makeHardlink(at(target), child(parent, name)),
    remove: (node) => Disk.removeEntry(at(node), model.isDirectory(node))
  }
}

/** Gives back the contents of every file whose last name goes with `node`. */
const releaseBelow = (model: TreeModel, node: NodeId, contents: ContentSink) => {
  const stack = [node]
  while (stack.length > 0) {
    const current = stack.pop()!
    const children = model.childrenOf(current)
    if (children !== undefined) {
      for (const child of children) stack.push(child)
    } else {
      const inode = model.inodeOf(current)
      const content = model.content(inode)
      if (model.unlink(inode) === 0 && content !== undefined) contents.release(content)
    }
  }
}

export const contentSinkFor = (model: TreeModel, contents: ContentSink): TreeSink => ({
  directory: () => undefined,
  file: (_parent, _name, size, sparse) => contents.begin(size, sparse),
  symlink: () => undefined,
  special: () => undefined,
  hardlink: () => undefined,
  remove: (node) => releaseBelow(model, node, contents)
})
