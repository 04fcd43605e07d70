/**
 * What applying a layer does besides updating the model: mirror it into a directory on disk
 * (`diskSink`, for `flatten`), or send file contents to a content sink such as an image draft
 * (`contentSinkFor`, for `flattenInto`), where every other change lives in the model alone.
 * Calls are synchronous and throw `DiskFailure` or `ContentFailure`.
 */
import type { ContentSink, StoredContent } from "../../domain/content.js"
import * as Disk from "./disk-tree.js"
import { pathOf, type TreeNode } from "./tree-model.js"

export interface FileSink {
  readonly write: (chunk: Uint8Array) => void
  /** A hole of `length` zero bytes (sparse files only). */
  readonly skip: (length: number) => void
  /** The stored contents, when the sink keeps them somewhere the model must remember. */
  readonly finish: () => StoredContent | undefined
  readonly abandon: () => void
}

export interface TreeSink {
  readonly directory: (parent: TreeNode, name: string) => void
  readonly file: (parent: TreeNode, name: string, size: number, sparse: ReadonlyArray<number> | undefined) => FileSink
  readonly symlink: (parent: TreeNode, name: string, target: string) => void
  /** A device or fifo. */
  readonly special: (parent: TreeNode, name: string) => void
  readonly hardlink: (target: TreeNode, parent: TreeNode, name: string) => void
  /** Called before `node` (and everything below it) leaves the model. */
  readonly remove: (node: TreeNode) => void
}

export const diskSink = (dir: string): TreeSink => {
  const at = (node: TreeNode) => {
    const relative = pathOf(node)
    return relative === "" ? dir : `${dir}/${relative}`
  }
  const child = (parent: TreeNode, name: string) => `${at(parent)}/${name}`
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
    remove: (node) => Disk.removeEntry(at(node), node.inode.type === "directory")
  }
}

/** Gives back the contents of every file whose last name goes with `node`. */
const releaseBelow = (node: TreeNode, contents: ContentSink) => {
  const stack = [node]
  while (stack.length > 0) {
    const current = stack.pop()!
    const inode = current.inode
    if (current.children !== undefined) {
      stack.push(...current.children.values())
    } else {
      inode.links--
      if (inode.links === 0 && inode.content !== undefined) contents.release(inode.content)
    }
  }
}

export const contentSinkFor = (contents: ContentSink): TreeSink => ({
  directory: () => undefined,
  file: (_parent, _name, size, sparse) => {
    const writer = contents.begin(size, sparse)
    return { write: writer.write, skip: writer.skip, finish: writer.finish, abandon: writer.abandon }
  },
  symlink: () => undefined,
  special: () => undefined,
  hardlink: () => undefined,
  remove: (node) => releaseBelow(node, contents)
})
