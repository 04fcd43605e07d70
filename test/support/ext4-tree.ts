/**
 * Writes a FlatTree by hand the way the flattener leaves one: contents only, files 0600 and
 * directories 0700 owned by whoever runs the test, hard links as real links, devices and fifos as
 * empty regular placeholders; the exact metadata lives in the returned entries only.
 */

import * as fs from "node:fs"
import * as path from "node:path"
import type { EntryType, FlatTree, TreeEntry } from "../../src/domain/tree.js"

export interface SparseContent {
  readonly size: number
  readonly chunks: ReadonlyArray<readonly [offset: number, data: Uint8Array]>
}

export interface TreeSpec {
  readonly path: string
  readonly type: EntryType
  readonly mode: number
  readonly uid?: number
  readonly gid?: number
  readonly mtime?: number
  readonly content?: Uint8Array | string | SparseContent
  readonly target?: string
  readonly hardlinkTo?: string
  readonly major?: number
  readonly minor?: number
  readonly xattrs?: ReadonlyArray<readonly [string, Uint8Array | string]>
}

const isSparse = (content: TreeSpec["content"]): content is SparseContent =>
  typeof content === "object" && content !== null && "chunks" in content

/** The bytes a spec's file holds, holes as zeros. */
export const contentOf = (spec: TreeSpec): Buffer => {
  const { content } = spec
  if (content === undefined) return Buffer.alloc(0)
  if (typeof content === "string") return Buffer.from(content)
  if (!isSparse(content)) return Buffer.from(content)
  const bytes = Buffer.alloc(content.size)
  for (const [offset, data] of content.chunks) Buffer.from(data).copy(bytes, offset)
  return bytes
}

export const writeTree = (dir: string, specs: ReadonlyArray<TreeSpec>): FlatTree => {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  fs.chmodSync(dir, 0o700)
  const entries: Array<TreeEntry> = []
  const all = specs.some((spec) => spec.path === "")
    ? specs
    : [{ path: "", type: "directory", mode: 0o755 } as TreeSpec, ...specs]
  for (const spec of all) {
    const target = path.join(dir, spec.path)
    let size = 0
    if (spec.path !== "") {
      if (spec.hardlinkTo !== undefined) fs.linkSync(path.join(dir, spec.hardlinkTo), target)
      else if (spec.type === "directory") fs.mkdirSync(target, { mode: 0o700 })
      else if (spec.type === "symlink") fs.symlinkSync(spec.target!, target)
      else if (spec.type === "file") {
        const { content } = spec
        if (isSparse(content)) {
          const handle = fs.openSync(target, "w", 0o600)
          for (const [offset, data] of content.chunks) fs.writeSync(handle, data, 0, data.length, offset)
          fs.ftruncateSync(handle, content.size)
          fs.closeSync(handle)
        } else fs.writeFileSync(target, contentOf(spec), { mode: 0o600 })
      } else fs.writeFileSync(target, "", { mode: 0o600 })
    }
    if (spec.type === "file") size = contentOf(spec).length
    entries.push({
      path: spec.path,
      type: spec.type,
      mode: spec.mode,
      uid: spec.uid ?? 0,
      gid: spec.gid ?? 0,
      mtime: spec.mtime ?? 1_700_000_000,
      size,
      linkTarget: spec.type === "symlink" ? spec.target : undefined,
      hardlinkTo: spec.hardlinkTo,
      devMajor: spec.type === "char" || spec.type === "block" ? (spec.major ?? 0) : undefined,
      devMinor: spec.type === "char" || spec.type === "block" ? (spec.minor ?? 0) : undefined,
      xattrs: (spec.xattrs ?? []).map(([name, value]) => [name, typeof value === "string" ? Buffer.from(value) : value])
    })
  }
  return { dir, entries }
}
