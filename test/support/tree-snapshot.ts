/**
 * A comparable record of everything an image must preserve about a tree, for asserting that a
 * rootfs came out of layers exactly as it went in.
 */

import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"

export interface NodeRecord {
  readonly type: "file" | "dir" | "symlink" | "char" | "block" | "fifo" | "socket"
  /** Permission bits including setuid/setgid/sticky, octal. */
  readonly mode: string
  readonly uid: number
  readonly gid: number
  /** Whole seconds: tar keeps no more. */
  readonly mtime: number
  readonly size?: number
  readonly sha256?: string
  readonly target?: string
  readonly rdev?: number
  /** For files with several links: the first path (sorted walk order) of the inode's group. */
  readonly linkGroup?: string
}

export interface SnapshotOptions {
  /** Skip paths (relative); a skipped directory's subtree is skipped too. */
  readonly exclude?: (relPath: string) => boolean
  /** Hash regular file contents (default true). */
  readonly contents?: boolean
}

/** Walks `root` (not included itself) in sorted order; keys are relative paths. */
export const snapshotTree = async (root: string, options: SnapshotOptions = {}): Promise<Map<string, NodeRecord>> => {
  const records = new Map<string, NodeRecord>()
  const groups = new Map<string, string>()
  const walk = async (rel: string) => {
    for (const name of (await fs.readdir(path.join(root, rel))).sort()) {
      const childRel = rel === "" ? name : `${rel}/${name}`
      if (options.exclude?.(childRel)) continue
      const full = path.join(root, childRel)
      const stats = await fs.lstat(full)
      const common = {
        mode: (stats.mode & 0o7777).toString(8),
        uid: stats.uid,
        gid: stats.gid,
        mtime: Math.floor(stats.mtimeMs / 1000)
      }
      if (stats.isDirectory()) {
        records.set(childRel, { type: "dir", ...common })
        await walk(childRel)
      } else if (stats.isSymbolicLink()) {
        records.set(childRel, { type: "symlink", ...common, target: await fs.readlink(full) })
      } else if (stats.isFile()) {
        let linkGroup: string | undefined
        if (stats.nlink > 1) {
          const key = `${stats.dev}:${stats.ino}`
          linkGroup = groups.get(key) ?? childRel
          groups.set(key, linkGroup)
        }
        records.set(childRel, {
          type: "file",
          ...common,
          size: stats.size,
          ...(options.contents === false ? {} : { sha256: await hashFile(full) }),
          ...(linkGroup ? { linkGroup } : {})
        })
      } else {
        const type = stats.isCharacterDevice()
          ? "char"
          : stats.isBlockDevice()
            ? "block"
            : stats.isFIFO()
              ? "fifo"
              : "socket"
        records.set(childRel, { type, ...common, ...(type === "char" || type === "block" ? { rdev: stats.rdev } : {}) })
      }
    }
  }
  await walk("")
  return records
}

const hashFile = async (file: string): Promise<string> => {
  const hash = createHash("sha256")
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest("hex")
}

/** Human-readable differences (at most `limit`), empty when the snapshots are equal. */
export const diffSnapshots = (
  expected: ReadonlyMap<string, NodeRecord>,
  actual: ReadonlyMap<string, NodeRecord>,
  limit = 50
): Array<string> => {
  const out: Array<string> = []
  for (const [p, want] of expected) {
    const got = actual.get(p)
    if (!got) out.push(`missing ${p}`)
    else if (JSON.stringify(got) !== JSON.stringify(want)) {
      out.push(`differs ${p}: want ${JSON.stringify(want)} got ${JSON.stringify(got)}`)
    }
    if (out.length >= limit) return out
  }
  for (const p of actual.keys()) {
    if (!expected.has(p)) out.push(`unexpected ${p}`)
    if (out.length >= limit) return out
  }
  return out
}
