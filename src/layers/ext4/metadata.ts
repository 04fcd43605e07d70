import * as path from "node:path"
import { type CommandExecutor, FileSystem } from "@effect/platform"
import { Effect, Either, Stream } from "effect"
import { Ext4Error } from "../../domain/errors.js"
import type { TreeEntry } from "../../domain/tree.js"
import { expressible, inodeSpec, octal, quote, typeBits } from "./debugfs-script.js"
import { BLOCK_SIZE } from "./geometry.js"
import { runTool } from "./process.js"
import type { ResolvedInode } from "./resolve.js"

/**
 * The single `debugfs -w` run that gives every inode its exact metadata. Inodes are addressed by
 * number (`<ino>`), never by path: no lookups, so it stays fast in huge directories, and names only
 * appear in the script where a device or fifo replaces its placeholder.
 */

const isSpecial = (entry: TreeEntry) => entry.type === "char" || entry.type === "block" || entry.type === "fifo"

/** How ext4 (and the kernel) store a device number in i_block[0] / i_block[1]. */
export const encodeDevice = (major: number, minor: number): readonly [number, number] =>
  major < 256 && minor < 256
    ? [major * 256 + minor, 0]
    : [0, ((minor & 0xff) + major * 256 + Math.floor(minor / 256) * 256 * 4096) >>> 0]

const checkEntry = (entry: TreeEntry): string | undefined => {
  const id = (value: number) => Number.isSafeInteger(value) && value >= 0 && value <= 0xffffffff
  if (!id(entry.uid) || !id(entry.gid)) return "uid and gid must be 32-bit unsigned integers"
  if (!Number.isSafeInteger(entry.mtime)) return "mtime must be whole seconds"
  if (entry.type === "char" || entry.type === "block") {
    const major = entry.devMajor ?? 0
    const minor = entry.devMinor ?? 0
    if (
      !Number.isInteger(major) ||
      major < 0 ||
      major > 0xfff ||
      !Number.isInteger(minor) ||
      minor < 0 ||
      minor > 0xfffff
    ) {
      return `device number ${major}:${minor} does not fit ext4 (12-bit major, 20-bit minor)`
    }
  }
  for (const [name, value] of entry.xattrs) {
    if (name === "" || !expressible(name)) return `xattr name ${JSON.stringify(name)} cannot be written with debugfs`
    if (value.length > BLOCK_SIZE) return `xattr ${name} holds ${value.length} bytes, more than an ext4 block`
  }
  return undefined
}

interface Plan {
  /** Script text in chunks of a few thousand inodes. */
  readonly chunks: Iterable<string>
  readonly commandCount: () => number
  readonly values: ReadonlyArray<readonly [file: string, value: Uint8Array]>
}

/**
 * The script for all inodes, or the first reason one cannot be expressed. Ordinary inodes come first,
 * sorted by number so writes stay within a few inode-table blocks; then each device or fifo
 * placeholder is unlinked, freed and re-created with `mknod` under each of its names.
 */
export const planMetadata = (inodes: ReadonlyArray<ResolvedInode>, valueDir: string): Either.Either<Plan, string> => {
  const values = new Map<string, string>()
  const valueFiles: Array<readonly [string, Uint8Array]> = []
  const valueFile = (value: Uint8Array) => {
    const key = Buffer.from(value).toString("base64")
    let file = values.get(key)
    if (file === undefined) {
      file = path.join(valueDir, String(values.size))
      values.set(key, file)
      valueFiles.push([file, value])
    }
    return file
  }
  if (!expressible(valueDir)) return Either.left(`work directory ${valueDir} cannot be written with debugfs`)
  const paths = new Set(inodes.flatMap((inode) => inode.names.map((name) => name.path)))
  const parentOf = (file: string) => file.slice(0, Math.max(file.lastIndexOf("/"), 0))
  const special: Array<ResolvedInode> = []
  for (const inode of inodes) {
    const problem = checkEntry(inode.entry)
    if (problem !== undefined) return Either.left(`"${inode.entry.path}": ${problem}`)
    for (const [, value] of inode.entry.xattrs) valueFile(value)
    for (const { name } of inode.relinked) {
      if (!expressible(name.name))
        return Either.left(`"${name.path}": a hard-linked symlink name with a newline cannot be linked with debugfs`)
      // Relinks run from the root directory, where `ln` first tries its destination as a path.
      if (paths.has(inodeSpec(name.parentIno)))
        return Either.left(`"${name.path}": hard link cannot be made next to "${inodeSpec(name.parentIno)}"`)
    }
    if (!isSpecial(inode.entry)) continue
    for (const name of inode.names) {
      if (!expressible(name.name))
        return Either.left(`"${name.path}": a ${inode.entry.type} name with a newline cannot be created with debugfs`)
      // `ln` first tries its destination as a path from the current directory (the first name's
      // parent): a sibling literally named `<ino>` there would capture the link.
      const shadow = `${parentOf(inode.names[0]!.path)}/${inodeSpec(name.parentIno)}`.replace(/^\//, "")
      if (paths.has(shadow)) return Either.left(`"${name.path}": hard link cannot be made next to "${shadow}"`)
    }
    special.push(inode)
  }

  let count = 0
  const fields = (target: string, entry: TreeEntry, listed: ResolvedInode["listed"], out: Array<string>) => {
    const mode = typeBits[entry.type] | (entry.mode & 0o7777)
    if (listed === undefined || listed.mode !== mode) out.push(`sif ${target} mode ${octal(mode)}`)
    if (listed === undefined || listed.uid !== entry.uid) out.push(`sif ${target} uid ${entry.uid}`)
    if (listed === undefined || listed.gid !== entry.gid) out.push(`sif ${target} gid ${entry.gid}`)
    // atime, ctime and crtime follow mtime: nothing else is known, and it keeps builds reproducible.
    for (const field of ["atime", "mtime", "ctime", "crtime"]) out.push(`sif ${target} ${field} @${entry.mtime}`)
    for (const [name, value] of entry.xattrs) {
      out.push(`ea_set -f ${quote(values.get(Buffer.from(value).toString("base64"))!)} -- ${target} ${quote(name)}`)
    }
  }
  const ordinary = (inode: ResolvedInode, out: Array<string>) => {
    // mkfs gave each later name of a hard-linked symlink an inode of its own: drop it, link the name.
    for (const { ino, name } of inode.relinked) {
      const where = quote(`${inodeSpec(name.parentIno)}/${name.name}`)
      out.push(`unlink ${where}`, `sif ${inodeSpec(ino)} links_count 0`, `kill_file ${inodeSpec(ino)}`)
      out.push(`ln ${inodeSpec(inode.ino)} ${where}`)
    }
    if (inode.relinked.length > 0) out.push(`sif ${inodeSpec(inode.ino)} links_count ${inode.names.length}`)
    fields(inodeSpec(inode.ino), inode.entry, inode.listed, out)
  }
  const recreate = (inode: ResolvedInode, out: Array<string>) => {
    const { entry, names } = inode
    for (const name of names) out.push(`unlink ${quote(`${inodeSpec(name.parentIno)}/${name.name}`)}`)
    out.push(`sif ${inodeSpec(inode.ino)} links_count 0`, `kill_file ${inodeSpec(inode.ino)}`)
    const [first, ...others] = names
    out.push(`cd ${inodeSpec(first!.parentIno)}`)
    out.push(`mknod ${quote(first!.name)} ${entry.type === "fifo" ? "p" : `${entry.type === "char" ? "c" : "b"} 0 0`}`)
    const self = quote(`./${first!.name}`)
    for (const other of others) out.push(`ln ${self} ${quote(`${inodeSpec(other.parentIno)}/${other.name}`)}`)
    if (others.length > 0) out.push(`sif ${self} links_count ${names.length}`)
    fields(self, entry, undefined, out)
    if (entry.type !== "fifo") {
      const [low, high] = encodeDevice(entry.devMajor ?? 0, entry.devMinor ?? 0)
      out.push(`sif ${self} block[0] ${low}`, `sif ${self} block[1] ${high}`)
    }
  }

  function* chunks(): Generator<string> {
    let out: Array<string> = []
    const flush = () => {
      count += out.length
      const text = out.length === 0 ? "" : `${out.join("\n")}\n`
      out = []
      return text
    }
    for (const inode of inodes) {
      if (isSpecial(inode.entry)) continue
      ordinary(inode, out)
      if (out.length >= 20_000) yield flush()
    }
    for (const inode of special) recreate(inode, out)
    out.push(`cd ${inodeSpec(2)}`)
    yield flush()
  }
  return Either.right({ chunks: chunks(), commandCount: () => count, values: valueFiles })
}

/** Commands that print nothing when they succeed, bar the lines in `quiet` below. */
const verbs = /^debugfs: (sif|ea_set|unlink|kill_file|cd|mknod|ln) /
const quiet = /^(|Allocated inode: \d+|debugfs \d+\.\d+.*)$/

/** Tallies echoes and keeps the first few errors, each with the command it followed. */
class Scanner {
  echoed = 0
  errorCount = 0
  readonly errors: Array<string> = []
  private last = ""
  private carry: Buffer = Buffer.alloc(0)

  line(line: string) {
    if (verbs.test(line)) {
      this.echoed++
      this.last = line.slice("debugfs: ".length)
    } else if (!quiet.test(line)) {
      this.errorCount++
      if (this.errors.length < 20) this.errors.push(`${this.last || "debugfs"}: ${line}`)
    }
  }

  /** Feeds raw output; lines split across chunks (or inside a UTF-8 sequence) wait for the rest. */
  chunk(bytes: Uint8Array) {
    const data = this.carry.length === 0 ? Buffer.from(bytes) : Buffer.concat([this.carry, bytes])
    const end = data.lastIndexOf(10)
    if (end < 0) {
      this.carry = data
      return
    }
    for (const line of data.toString("utf8", 0, end).split("\n")) this.line(line)
    this.carry = data.subarray(end + 1)
  }

  finish() {
    if (this.carry.length > 0) this.line(this.carry.toString("utf8"))
    this.carry = Buffer.alloc(0)
  }
}

/**
 * Writes the value files, streams the script to `debugfs -w -f -` and fails on any command error.
 * debugfs exits 0 when a command fails, so its output is the only signal: every line must be an
 * echo of one of our commands or a known harmless line, and every command must have been echoed.
 */
export const applyMetadata = Effect.fn("ext4.applyMetadata")(function* (
  image: string,
  inodes: ReadonlyArray<ResolvedInode>,
  workDir: string,
  env: Readonly<Record<string, string>>
): Effect.fn.Return<void, Ext4Error, CommandExecutor.CommandExecutor | FileSystem.FileSystem> {
  const fs = yield* FileSystem.FileSystem
  const valueDir = path.join(workDir, "xattrs")
  const plan = planMetadata(inodes, valueDir)
  if (Either.isLeft(plan)) return yield* new Ext4Error({ tool: "debugfs", reason: plan.left, stderr: "" })
  const { chunks, commandCount, values } = plan.right
  yield* Effect.gen(function* () {
    yield* fs.makeDirectory(valueDir, { recursive: true })
    for (const [file, value] of values) yield* fs.writeFile(file, value)
  }).pipe(
    Effect.mapError(
      (error) =>
        new Ext4Error({ tool: "debugfs", reason: `could not write xattr values: ${error.message}`, stderr: "" })
    )
  )
  const encoder = new TextEncoder()
  const outputFile = path.join(workDir, "metadata.out")
  const result = yield* runTool(
    {
      tool: "debugfs",
      args: ["-w", "-f", "-", image],
      env,
      stdin: Stream.fromIterable(chunks).pipe(Stream.map((text) => encoder.encode(text))),
      outputFile
    },
    () => Effect.void
  )
  const scan = new Scanner()
  yield* fs.stream(outputFile, { chunkSize: 1024 * 1024 }).pipe(
    Stream.runForEach((bytes) => Effect.sync(() => scan.chunk(bytes))),
    Effect.mapError(
      (error) => new Ext4Error({ tool: "debugfs", reason: `could not read its output: ${error.message}`, stderr: "" })
    )
  )
  scan.finish()
  const expected = commandCount()
  if (scan.errorCount > 0 || result.exitCode !== 0 || scan.echoed !== expected) {
    const reason =
      scan.errorCount > 0
        ? `${scan.errorCount} metadata command(s) failed`
        : result.exitCode !== 0
          ? `exited with ${result.exitCode}`
          : `ran ${scan.echoed} of ${expected} metadata commands`
    return yield* new Ext4Error({ tool: "debugfs", reason, stderr: scan.errors.join("\n") })
  }
})
