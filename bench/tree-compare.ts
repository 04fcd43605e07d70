/**
 * Entry-by-entry comparison of two directory trees (a reference extraction and banger's ext4, mounted
 * read-only): type, mode, owner, size, contents hash, link target, device numbers, xattrs and
 * hardlink groups. Directory sizes and times are not compared (filesystems differ in both). Contents
 * are hashed file by file, streamed, a few files at a time; only hardlinked files are remembered.
 */

import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { createReadStream, type Stats } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"

export interface TreeDifference {
  /** Relative to the roots ("" is the root itself). */
  readonly path: string
  readonly what: string
  readonly reference: string
  readonly actual: string
}

export interface TreeComparison {
  /** Entries of the reference tree, its root not counted. */
  readonly entries: number
  /** Regular files' bytes in the reference tree, hardlinks once. */
  readonly fileBytes: number
  readonly hardlinkGroups: number
  readonly xattrEntries: number
  readonly differences: number
  /** The first `limit` differences, in walk order. */
  readonly first: ReadonlyArray<TreeDifference>
}

export interface CompareOptions {
  /** Names at the actual tree's root that the reference need not have (e.g. ext4's lost+found). */
  readonly extraAtRoot?: ReadonlyArray<string>
  readonly limit?: number
  /** Files hashed at once per tree. */
  readonly concurrency?: number
}

const typeName = (stats: Stats) =>
  stats.isFile()
    ? "file"
    : stats.isDirectory()
      ? "directory"
      : stats.isSymbolicLink()
        ? "symlink"
        : stats.isCharacterDevice()
          ? "char"
          : stats.isBlockDevice()
            ? "block"
            : stats.isFIFO()
              ? "fifo"
              : "socket"

const SMALL_FILE = 1024 * 1024

const hashFile = async (file: string) => {
  const hash = createHash("sha256")
  const stats = await fs.stat(file)
  if (stats.size <= SMALL_FILE) hash.update(await fs.readFile(file))
  else for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer)
  return hash.digest("hex")
}

/**
 * Every entry's xattrs below `root`, keyed by the path as getfattr prints it (relative, escaped):
 * one `getfattr -R` run per tree, far cheaper than a process per file. Node has no xattr API.
 */
export const readXattrs = (root: string): Promise<Map<string, string>> =>
  new Promise((resolve, reject) => {
    const child = spawn("getfattr", ["-R", "-P", "-h", "-d", "-m", "-", "-e", "hex", "."], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"]
    })
    const out: Array<Buffer> = []
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk))
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    child.on("error", (error) =>
      reject(new Error(`getfattr: ${error.message} (on Debian: apt-get install attr)`, { cause: error }))
    )
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`getfattr -R ${root} failed (${code}): ${stderr.trim()}`))
      const found = new Map<string, string>()
      for (const block of Buffer.concat(out).toString("utf8").split("\n\n")) {
        const lines = block.split("\n").filter((line) => line !== "")
        const file = lines[0]?.startsWith("# file: ") ? lines[0].slice("# file: ".length) : undefined
        if (file === undefined || lines.length < 2) continue
        found.set(file === "." ? "" : file.replace(/^\.\//, ""), lines.slice(1).sort().join(" "))
      }
      resolve(found)
    })
  })

/** Runs `task` over `items`, `limit` at a time. */
const eachLimited = async <A>(items: ReadonlyArray<A>, limit: number, task: (item: A) => Promise<void>) => {
  let next = 0
  const worker = async () => {
    while (next < items.length) await task(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

export const compareTrees = async (
  reference: string,
  actual: string,
  options: CompareOptions = {}
): Promise<TreeComparison> => {
  const limit = options.limit ?? 20
  const concurrency = options.concurrency ?? 8
  const first: Array<TreeDifference> = []
  let differences = 0
  let entries = 0
  let fileBytes = 0
  const differ = (rel: string, what: string, ref: unknown, act: unknown) => {
    differences++
    if (first.length < limit) first.push({ path: rel, what, reference: String(ref), actual: String(act) })
  }
  // Inode → paths, per tree, for files with more than one link.
  const links = [new Map<string, Array<string>>(), new Map<string, Array<string>>()] as const
  const remember = (side: 0 | 1, stats: Stats, rel: string) => {
    if (!stats.isFile() || stats.nlink < 2) return false
    const key = `${stats.dev}:${stats.ino}`
    const paths = links[side].get(key)
    if (paths) paths.push(rel)
    else links[side].set(key, [rel])
    return paths !== undefined
  }

  const compareEntry = async (rel: string, ref: Stats, act: Stats) => {
    const refType = typeName(ref)
    if (refType !== typeName(act)) return differ(rel, "type", refType, typeName(act))
    if ((ref.mode & 0o7777) !== (act.mode & 0o7777) && refType !== "symlink") {
      differ(rel, "mode", (ref.mode & 0o7777).toString(8), (act.mode & 0o7777).toString(8))
    }
    if (ref.uid !== act.uid || ref.gid !== act.gid)
      differ(rel, "owner", `${ref.uid}:${ref.gid}`, `${act.uid}:${act.gid}`)
    if (refType === "symlink") {
      const [refTarget, actTarget] = await Promise.all([
        fs.readlink(path.join(reference, rel)),
        fs.readlink(path.join(actual, rel))
      ])
      if (refTarget !== actTarget) differ(rel, "link target", refTarget, actTarget)
    } else if (refType === "char" || refType === "block") {
      if (ref.rdev !== act.rdev) differ(rel, "device", ref.rdev, act.rdev)
    } else if (refType === "file") {
      const seenRef = remember(0, ref, rel)
      const seenAct = remember(1, act, rel)
      if (ref.size !== act.size) return differ(rel, "size", ref.size, act.size)
      // A second link to an inode already hashed on both sides has the same contents by definition.
      if (seenRef && seenAct) return
      fileBytes += ref.size
      const [refHash, actHash] = await Promise.all([
        hashFile(path.join(reference, rel)),
        hashFile(path.join(actual, rel))
      ])
      if (refHash !== actHash) differ(rel, "contents (sha256)", refHash, actHash)
    }
  }

  const walk = async (rel: string): Promise<void> => {
    const [refNames, actNames] = await Promise.all(
      [reference, actual].map(async (root) => new Set(await fs.readdir(path.join(root, rel))))
    )
    const common: Array<string> = []
    for (const name of [...refNames!].sort()) {
      if (actNames!.has(name)) common.push(name)
      else differ(rel === "" ? name : `${rel}/${name}`, "missing in banger's tree", "present", "absent")
    }
    for (const name of [...actNames!].sort()) {
      if (refNames!.has(name) || (rel === "" && options.extraAtRoot?.includes(name))) continue
      differ(rel === "" ? name : `${rel}/${name}`, "not in the reference", "absent", "present")
    }
    entries += common.length
    const directories: Array<string> = []
    await eachLimited(common, concurrency, async (name) => {
      const child = rel === "" ? name : `${rel}/${name}`
      const [ref, act] = await Promise.all([fs.lstat(path.join(reference, child)), fs.lstat(path.join(actual, child))])
      await compareEntry(child, ref, act)
      if (ref.isDirectory() && act.isDirectory()) directories.push(child)
    })
    for (const directory of directories.sort()) await walk(directory)
  }

  const [refRoot, actRoot] = await Promise.all([fs.lstat(reference), fs.lstat(actual)])
  await compareEntry("", refRoot, actRoot)
  await walk("")

  // Hardlink groups: the same sets of paths share an inode on both sides.
  const groups = (side: 0 | 1) =>
    new Set([...links[side].values()].filter((paths) => paths.length > 1).map((paths) => paths.sort().join("\n")))
  const [refGroups, actGroups] = [groups(0), groups(1)]
  for (const group of refGroups) {
    if (!actGroups.has(group))
      differ(group.split("\n")[0]!, "hardlink group", group.replaceAll("\n", " = "), "not one inode")
  }
  for (const group of actGroups) {
    if (!refGroups.has(group))
      differ(group.split("\n")[0]!, "hardlink group", "not one inode", group.replaceAll("\n", " = "))
  }

  const [refXattrs, actXattrs] = await Promise.all([readXattrs(reference), readXattrs(actual)])
  for (const [file, attrs] of refXattrs) {
    if (actXattrs.get(file) !== attrs) differ(file, "xattrs", attrs, actXattrs.get(file) ?? "none")
  }
  for (const [file, attrs] of actXattrs) {
    const root = file.split("/")[0]!
    if (refXattrs.has(file) || options.extraAtRoot?.includes(root)) continue
    differ(file, "xattrs", "none", attrs)
  }

  return { entries, fileBytes, hardlinkGroups: refGroups.size, xattrEntries: refXattrs.size, differences, first }
}

export const formatDifferences = (comparison: TreeComparison) =>
  comparison.first.map((d) => `  ${d.path || "/"}: ${d.what}: reference ${d.reference}, banger ${d.actual}`).join("\n")
