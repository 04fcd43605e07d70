/**
 * Reads an ext4 image back without mounting it or being root. `inspectImage` walks the whole tree
 * with one debugfs run per directory level (`ls -p`), reads every raw on-disk inode straight from
 * the image (so ids, times, modes and device numbers are exact, not as `stat` pretty-prints them),
 * then one debugfs run lists xattr names and reads slow symlink targets and one more reads the
 * xattr values.
 *
 * Output is decoded as latin1 so byte offsets stay byte offsets (symlink targets and file contents
 * are binary); names are turned back into UTF-8 at the end.
 */

import * as nodeFs from "node:fs"
import * as path from "node:path"
import { type CommandExecutor, FileSystem } from "@effect/platform"
import { Effect, Stream } from "effect"
import { Ext4Error } from "../../src/domain/errors.js"
import type { EntryType, TreeEntry } from "../../src/domain/tree.js"
import { runTool } from "../../src/layers/ext4/process.js"
import { parseRecords } from "./debugfs/listing.js"
import { expressible, inodeSpec, quote } from "./debugfs/script.js"

export interface ImageEntry {
  /** Relative path, "" for the root (as in `TreeEntry`). */
  readonly path: string
  readonly type: EntryType | "socket" | "unknown"
  /** Permission bits incl. setuid/setgid/sticky. */
  readonly mode: number
  /** The full i_mode, type bits included. */
  readonly rawMode: number
  readonly uid: number
  readonly gid: number
  readonly mtime: number
  readonly atime: number
  readonly ctime: number
  readonly crtime: number | undefined
  /** Nanosecond parts of the times, in the order mtime, atime, ctime. */
  readonly nanos: readonly [number, number, number]
  readonly size: number
  readonly linkTarget: string | undefined
  readonly inode: number
  readonly links: number
  readonly flags: number
  readonly devMajor: number | undefined
  readonly devMinor: number | undefined
  /** Sorted by name (ext4 does not keep the order they were set in). */
  readonly xattrs: ReadonlyArray<readonly [name: string, value: Buffer]>
}

const latin1 = (text: string) => Buffer.from(text, "utf8").toString("latin1")
const utf8 = (text: string) => Buffer.from(text, "latin1").toString("utf8")

const fail = (reason: string, stderr = "") => new Ext4Error({ tool: "debugfs", reason, stderr })

/** One read-only debugfs run over `commands`; each command's output is read by its `read`. */
interface Step<A> {
  readonly command: string
  /** Consumes this command's output from `position` (after its echo); returns result and end. */
  readonly read: (output: string, position: number) => readonly [A, number]
}

const runSteps = <A>(image: string, steps: ReadonlyArray<Step<A>>) =>
  Effect.gen(function* () {
    if (steps.length === 0) return []
    const fs = yield* FileSystem.FileSystem
    const script = steps.map((step) => `${step.command}\n`).join("")
    const { output, result } = yield* Effect.scoped(
      Effect.gen(function* () {
        const dir = yield* fs.makeTempDirectoryScoped({ prefix: "ext4-inspect-" }).pipe(Effect.orDie)
        const outputFile = path.join(dir, "out")
        const result = yield* runTool(
          { tool: "debugfs", args: ["-f", "-", image], stdin: Stream.make(Buffer.from(script)), outputFile },
          () => Effect.void
        )
        // Plain readFileSync: FileSystem.readFile took half a second per 64 MiB here.
        const output = yield* Effect.try({
          try: () => nodeFs.readFileSync(outputFile).toString("latin1"),
          catch: (error) => fail(`could not read debugfs output: ${String(error)}`)
        })
        return { output, result }
      })
    )
    const echo = (index: number) => latin1(`debugfs: ${steps[index]!.command}\n`)
    let position = output.indexOf(echo(0))
    if (position < 0 || result.exitCode !== 0)
      return yield* fail("debugfs did not run the script", output.slice(0, 2000))
    const results: Array<A> = []
    for (let index = 0; index < steps.length; index++) {
      if (!output.startsWith(echo(index), position)) {
        return yield* fail(
          `unexpected output before "${steps[index]!.command}"`,
          output.slice(position, position + 2000)
        )
      }
      const [value, end] = steps[index]!.read(output, position + echo(index).length)
      const next = index + 1 < steps.length ? output.indexOf(echo(index + 1), end) : output.length
      const stop = next < 0 ? output.length : next
      const leftover = output.slice(end, stop).trim()
      if (leftover !== "") return yield* fail(`"${steps[index]!.command}" failed`, utf8(leftover))
      results.push(value)
      position = stop
    }
    return results
  })

/**
 * Raw inodes straight from the image file: superblock, group descriptors, inode tables. debugfs's
 * `inode_dump` would do, but it prints a byte per unbuffered fprintf, which made reading 50k
 * inodes take 13 s; this takes milliseconds and is independent of debugfs.
 */
const readInodes = (image: string, inos: ReadonlyArray<number>) =>
  Effect.try({
    try: () => {
      const file = nodeFs.openSync(image, "r")
      try {
        const read = (offset: number, length: number) => {
          const buffer = Buffer.alloc(length)
          nodeFs.readSync(file, buffer, 0, length, offset)
          return buffer
        }
        const superblock = read(1024, 1024)
        const blockSize = 1024 << superblock.readUInt32LE(0x18)
        const inodesPerGroup = superblock.readUInt32LE(0x28)
        const inodeSize = superblock.readUInt16LE(0x58)
        const is64bit = (superblock.readUInt32LE(0x60) & 0x80) !== 0
        const descSize = is64bit ? superblock.readUInt16LE(0xfe) : 32
        const gdt = (superblock.readUInt32LE(0x14) + 1) * blockSize
        const tables = new Map<number, number>()
        const table = (group: number) => {
          let start = tables.get(group)
          if (start === undefined) {
            const desc = read(gdt + group * descSize, descSize)
            start = desc.readUInt32LE(0x08) + (descSize >= 64 ? desc.readUInt32LE(0x28) * 2 ** 32 : 0)
            tables.set(group, start)
          }
          return start
        }
        const inodes = new Map<number, RawInode>()
        for (const ino of inos) {
          const group = Math.floor((ino - 1) / inodesPerGroup)
          const offset = table(group) * blockSize + ((ino - 1) % inodesPerGroup) * inodeSize
          inodes.set(ino, rawInode(read(offset, Math.min(inodeSize, INODE_SIZE))))
        }
        return inodes
      } finally {
        nodeFs.closeSync(file)
      }
    },
    catch: (error) => fail(`could not read inodes from ${image}: ${String(error)}`)
  })

const INODE_SIZE = 256

interface RawInode {
  readonly bytes: Buffer
  readonly mode: number
  readonly size: number
  readonly flags: number
  readonly hasXattrs: boolean
}

const rawInode = (bytes: Buffer): RawInode => {
  const extraIsize = bytes.readUInt16LE(0x80)
  const inInodeXattrs =
    extraIsize > 0 && 0x80 + extraIsize + 4 <= INODE_SIZE && bytes.readUInt32LE(0x80 + extraIsize) === 0xea020000
  const fileAcl = bytes.readUInt32LE(0x68) + bytes.readUInt16LE(0x76) * 2 ** 32
  return {
    bytes,
    mode: bytes.readUInt16LE(0),
    size: bytes.readUInt32LE(0x04) + bytes.readUInt32LE(0x6c) * 2 ** 32,
    flags: bytes.readUInt32LE(0x20),
    hasXattrs: inInodeXattrs || fileAcl !== 0
  }
}

const typeOf = (mode: number): ImageEntry["type"] => {
  switch (mode & 0o170000) {
    case 0o100000:
      return "file"
    case 0o040000:
      return "directory"
    case 0o120000:
      return "symlink"
    case 0o020000:
      return "char"
    case 0o060000:
      return "block"
    case 0o010000:
      return "fifo"
    case 0o140000:
      return "socket"
    default:
      return "unknown"
  }
}

/** ext4 time: signed 32-bit seconds plus two epoch bits from the matching `_extra` field. */
const time = (bytes: Buffer, offset: number, extraOffset: number | undefined) => {
  const extra = extraOffset === undefined ? 0 : bytes.readUInt32LE(extraOffset)
  return bytes.readInt32LE(offset) + (extra & 3) * 2 ** 32
}

const EXTENTS_FL = 0x80000

/** Undoes debugfs's print_c_string (`\n`, `\\`, `\"`, `\ooo`, ...), or its hex form for unprintable names. */
const unescapeName = (printed: string): string => {
  if (/^(?:[0-9a-f]{2} )+$/.test(printed)) return Buffer.from(printed.replaceAll(" ", ""), "hex").toString("utf8")
  const bytes: Array<number> = []
  const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, t: 9, v: 11 }
  for (let index = 0; index < printed.length; index++) {
    const char = printed[index]!
    if (char !== "\\") {
      bytes.push(char.charCodeAt(0))
      continue
    }
    const next = printed[++index]!
    if (/[0-7]/.test(next)) {
      bytes.push(Number.parseInt(printed.slice(index, index + 3), 8))
      index += 2
    } else bytes.push(simple[next] ?? next.charCodeAt(0))
  }
  return Buffer.from(bytes).toString("utf8")
}

const readLines = (
  output: string,
  position: number,
  keep: (line: string) => boolean
): readonly [Array<string>, number] => {
  const lines: Array<string> = []
  for (;;) {
    const newline = output.indexOf("\n", position)
    if (newline < 0) return [lines, position]
    const line = output.slice(position, newline)
    if (!keep(line)) return [lines, position]
    lines.push(line)
    position = newline + 1
  }
}

/** Every inode of the image under every name, sorted by path. */
export const inspectImage = (
  image: string
): Effect.Effect<Array<ImageEntry>, Ext4Error, CommandExecutor.CommandExecutor | FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const names: Array<{ readonly path: string; readonly ino: number }> = [{ path: "", ino: 2 }]
    let dirs: Array<{ readonly path: string; readonly ino: number }> = [{ path: "", ino: 2 }]
    while (dirs.length > 0) {
      const listings = yield* runSteps(
        image,
        dirs.map((dir) => ({
          command: `ls -p -- ${inodeSpec(dir.ino)}`,
          read: (output: string, position: number) => {
            const [entries, end] = parseRecords(output, position)
            return [{ dir: dir.path, entries }, end] as const
          }
        }))
      )
      dirs = []
      for (const listing of listings) {
        for (const child of listing.entries) {
          const name = utf8(child.name)
          const childPath = listing.dir === "" ? name : `${listing.dir}/${name}`
          names.push({ path: childPath, ino: child.ino })
          if ((child.mode & 0o170000) === 0o040000) dirs.push({ path: childPath, ino: child.ino })
        }
      }
    }
    const inodes = yield* readInodes(image, [...new Set(names.map((name) => name.ino))])

    // Second pass: xattr names, and targets of symlinks too long to live in the inode.
    type Extra =
      | { readonly kind: "xattrs"; readonly ino: number; readonly names: Array<string> }
      | { readonly kind: "target"; readonly ino: number; readonly target: string }
    const extras: Array<Step<Extra>> = []
    for (const [ino, inode] of inodes) {
      if (inode.hasXattrs) {
        extras.push({
          command: `ea_list ${inodeSpec(ino)}`,
          read: (output, position) => {
            const [lines, end] = readLines(
              output,
              position,
              (line) => line === "Extended attributes:" || line.startsWith("  ")
            )
            const found = lines.flatMap((line) => {
              const match = /^ {2}(.+?) \((\d+)\)(?: = |$)/.exec(line)
              return match === null ? [] : [unescapeName(match[1]!)]
            })
            return [{ kind: "xattrs", ino, names: found }, end]
          }
        })
      }
      if (typeOf(inode.mode) === "symlink" && (inode.size >= 60 || (inode.flags & EXTENTS_FL) !== 0)) {
        extras.push({
          command: `cat ${inodeSpec(ino)}`,
          read: (output, position) => [
            { kind: "target", ino, target: output.slice(position, position + inode.size) },
            position + inode.size
          ]
        })
      }
    }
    const extraResults = yield* runSteps(image, extras)
    const targets = new Map<number, string>()
    const xattrNames: Array<{ readonly ino: number; readonly name: string }> = []
    for (const extra of extraResults) {
      if (extra.kind === "target") targets.set(extra.ino, utf8(extra.target))
      else for (const name of extra.names) xattrNames.push({ ino: extra.ino, name })
    }

    const values = yield* runSteps(
      image,
      xattrNames.map(
        ({ ino, name }): Step<Buffer> => ({
          command: `ea_get -x -- ${inodeSpec(ino)} ${quote(name)}`,
          read: (output, position) => {
            const [lines, end] = readLines(output, position, (line) => line !== "")
            const match = /\((\d+)\)(?: = ((?:[0-9a-f]{2} )*))?$/.exec(lines.join("\n"))
            const value = Buffer.from((match?.[2] ?? "").replaceAll(" ", ""), "hex")
            return [value, end]
          }
        })
      )
    )
    const xattrs = new Map<number, Array<readonly [string, Buffer]>>()
    xattrNames.forEach(({ ino, name }, index) => {
      const list = xattrs.get(ino) ?? []
      list.push([name, values[index]!])
      xattrs.set(ino, list)
    })

    return names
      .map(({ path: entryPath, ino }): ImageEntry => {
        const inode = inodes.get(ino)!
        const { bytes } = inode
        const type = typeOf(inode.mode)
        const extraIsize = bytes.readUInt16LE(0x80)
        const device = type === "char" || type === "block" ? decodeDevice(bytes) : undefined
        return {
          path: entryPath,
          type,
          mode: inode.mode & 0o7777,
          rawMode: inode.mode,
          uid: bytes.readUInt16LE(0x02) + bytes.readUInt16LE(0x78) * 65536,
          gid: bytes.readUInt16LE(0x18) + bytes.readUInt16LE(0x7a) * 65536,
          mtime: time(bytes, 0x10, extraIsize >= 12 ? 0x88 : undefined),
          atime: time(bytes, 0x08, extraIsize >= 16 ? 0x8c : undefined),
          ctime: time(bytes, 0x0c, extraIsize >= 8 ? 0x84 : undefined),
          crtime: extraIsize >= 24 ? time(bytes, 0x90, 0x94) : undefined,
          nanos: [
            extraIsize >= 12 ? bytes.readUInt32LE(0x88) >>> 2 : 0,
            extraIsize >= 16 ? bytes.readUInt32LE(0x8c) >>> 2 : 0,
            extraIsize >= 8 ? bytes.readUInt32LE(0x84) >>> 2 : 0
          ],
          size: inode.size,
          linkTarget:
            type !== "symlink"
              ? undefined
              : (targets.get(ino) ?? utf8(bytes.subarray(0x28, 0x28 + inode.size).toString("latin1"))),
          inode: ino,
          links: bytes.readUInt16LE(0x1a),
          flags: inode.flags,
          devMajor: device?.[0],
          devMinor: device?.[1],
          xattrs: (xattrs.get(ino) ?? []).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        }
      })
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  })

/** The kernel's old (8:8 in i_block[0]) and new (12:20 in i_block[1]) device encodings. */
const decodeDevice = (bytes: Buffer): readonly [number, number] => {
  const old = bytes.readUInt32LE(0x28)
  if (old !== 0) return [(old >> 8) & 0xff, old & 0xff]
  const dev = bytes.readUInt32LE(0x2c)
  return [(dev & 0xfff00) >> 8, (dev & 0xff) | ((dev >>> 12) & 0xfff00)]
}

/**
 * The contents of several regular files, by their inspected entries, keyed by path: `cat` of each
 * inode into debugfs's output, cut by the known sizes; one debugfs run per 64 MiB of contents.
 */
export const readFilesFromImage = (
  image: string,
  entries: ReadonlyArray<Pick<ImageEntry, "path" | "inode" | "size">>
): Effect.Effect<Map<string, Buffer>, Ext4Error, CommandExecutor.CommandExecutor | FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const sizes = new Map(entries.map((entry) => [entry.inode, entry.size]))
    const batches: Array<Array<number>> = [[]]
    let batchBytes = 0
    for (const [ino, size] of sizes) {
      if (batchBytes + size > 64 * 2 ** 20 && batches.at(-1)!.length > 0) {
        batches.push([])
        batchBytes = 0
      }
      batches.at(-1)!.push(ino)
      batchBytes += size
    }
    const contents = new Map<number, Buffer>()
    for (const batch of batches) {
      const results = yield* runSteps(
        image,
        batch.map(
          (ino): Step<Buffer> => ({
            command: `cat ${inodeSpec(ino)}`,
            read: (output, position) => {
              const end = position + sizes.get(ino)!
              return [Buffer.from(output.slice(position, end), "latin1"), end]
            }
          })
        )
      )
      for (const [index, ino] of batch.entries()) contents.set(ino, results[index]!)
    }
    return new Map(entries.map((entry) => [entry.path, contents.get(entry.inode)!]))
  })

/** The contents of one regular file, by path inside the image ("etc/hostname"). */
export const readFileFromImage = (
  image: string,
  filePath: string
): Effect.Effect<Buffer, Ext4Error, CommandExecutor.CommandExecutor | FileSystem.FileSystem> =>
  Effect.gen(function* () {
    if (expressible(filePath)) {
      return yield* Effect.scoped(
        Effect.gen(function* () {
          const fs = yield* FileSystem.FileSystem
          const dir = yield* fs.makeTempDirectoryScoped({ prefix: "ext4-inspect-" }).pipe(Effect.orDie)
          const out = path.join(dir, "file")
          yield* runSteps(image, [
            { command: `dump -- ${quote(`/${filePath}`)} ${quote(out)}`, read: (_, position) => [undefined, position] }
          ])
          return Buffer.from(yield* fs.readFile(out).pipe(Effect.orDie))
        })
      )
    }
    // Names debugfs cannot take in a script: find the inode by walking the tree instead.
    const entries = yield* inspectImage(image)
    const entry = entries.find((candidate) => candidate.path === filePath)
    if (entry === undefined || entry.type !== "file")
      return yield* fail(`${filePath} is not a regular file in ${image}`)
    const files = yield* readFilesFromImage(image, [entry])
    return files.get(filePath)!
  })

/**
 * Every way the image differs from the entries, one line each; empty when it matches exactly:
 * the same names (plus mkfs's lost+found when the entries have none), types, permission bits,
 * owners, mtime (atime, ctime and crtime equal to it, no nanoseconds), sizes, symlink targets,
 * device numbers, xattrs (as a set) and hard links (shared inode, link count = names).
 */
export const compareImage = (entries: ReadonlyArray<TreeEntry>, image: ReadonlyArray<ImageEntry>): Array<string> => {
  const problems: Array<string> = []
  const byPath = new Map(image.map((entry) => [entry.path, entry]))
  const expected = new Set(entries.map((entry) => entry.path))
  for (const found of image) {
    if (!expected.has(found.path) && !(found.path === "lost+found" && found.inode === 11)) {
      problems.push(`${JSON.stringify(found.path)}: in the image but not in the entries`)
    }
  }
  const names = new Map<string, number>()
  for (const entry of entries) {
    const key = entry.hardlinkTo ?? entry.path
    names.set(key, (names.get(key) ?? 0) + 1)
  }
  const key = (xattrs: ReadonlyArray<readonly [string, Uint8Array]>) =>
    [...xattrs].map(([name, value]) => `${name}=${Buffer.from(value).toString("hex")}`).sort()
  for (const entry of entries) {
    const found = byPath.get(entry.path)
    const where = JSON.stringify(entry.path)
    if (found === undefined) {
      problems.push(`${where}: missing from the image`)
      continue
    }
    const check = (field: string, want: unknown, got: unknown) => {
      if (want !== got) problems.push(`${where}: ${field} is ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`)
    }
    check("type", entry.type, found.type)
    check("mode", entry.mode.toString(8), found.mode.toString(8))
    check("uid", entry.uid, found.uid)
    check("gid", entry.gid, found.gid)
    check("mtime", entry.mtime, found.mtime)
    check("atime", entry.mtime, found.atime)
    check("ctime", entry.mtime, found.ctime)
    check("crtime", entry.mtime, found.crtime)
    check("nanoseconds", "0,0,0", found.nanos.join(","))
    if (entry.type === "symlink") {
      check("link target", entry.linkTarget, found.linkTarget)
      check("size", Buffer.byteLength(entry.linkTarget ?? ""), found.size)
    } else if (entry.type !== "directory") check("size", entry.size, found.size)
    if (entry.type === "char" || entry.type === "block") {
      check("device", `${entry.devMajor ?? 0}:${entry.devMinor ?? 0}`, `${found.devMajor}:${found.devMinor}`)
    }
    check("xattrs", key(entry.xattrs).join(" "), key(found.xattrs).join(" "))
    if (entry.type !== "directory") check("link count", names.get(entry.hardlinkTo ?? entry.path), found.links)
    if (entry.hardlinkTo !== undefined) {
      check(
        `inode (hard link to ${JSON.stringify(entry.hardlinkTo)})`,
        byPath.get(entry.hardlinkTo)?.inode,
        found.inode
      )
    }
  }
  const inodes = new Map<number, string>()
  for (const entry of entries) {
    if (entry.hardlinkTo !== undefined) continue
    const found = byPath.get(entry.path)
    if (found === undefined) continue
    const other = inodes.get(found.inode)
    if (other !== undefined)
      problems.push(`${JSON.stringify(entry.path)}: shares inode ${found.inode} with ${JSON.stringify(other)}`)
    inodes.set(found.inode, entry.path)
  }
  return problems
}
