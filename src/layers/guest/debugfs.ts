import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import type { CommandExecutor } from "@effect/platform"
import { Effect, Stream } from "effect"
import { Ext4Error } from "../../domain/errors.js"
import { collectBytes, runTool } from "../ext4/process.js"

/**
 * debugfs's script syntax (lib/ss): inside double quotes everything is literal except `""`; a
 * line ends at `\n` or `\r` and holds at most BUFSIZ - 1 bytes. Names with those characters or a
 * NUL cannot be written at all.
 */
export const quote = (text: string): string => `"${text.replaceAll('"', '""')}"`
export const expressible = (text: string): boolean => !/[\n\r\0]/.test(text)
const MAX_LINE_BYTES = 8190
export const lineFits = (line: string): boolean => Buffer.byteLength(line, "utf8") <= MAX_LINE_BYTES
export const inodeSpec = (ino: number): string => `<${ino}>`
export const ROOT_INO = 2

// debugfs pages `ls` and `stat` through $PAGER when it likes; never here.
const env = { DEBUGFS_PAGER: "__none__" }
const banner = /^debugfs \d/

const stderrLines = (stderr: string) => stderr.split("\n").filter((line) => line.trim() !== "" && !banner.test(line))

/**
 * One read-only request (`-R`), its stdout as bytes. debugfs exits 0 even when the request fails,
 * so anything on stderr besides its banner is the failure.
 */
export const request = (
  image: string,
  line: string
): Effect.Effect<Buffer, Ext4Error, CommandExecutor.CommandExecutor> =>
  Effect.gen(function* () {
    const result = yield* runTool({ tool: "debugfs", args: ["-R", line, image], env }, collectBytes)
    const errors = stderrLines(result.stderr)
    if (result.exitCode !== 0 || errors.length > 0) {
      return yield* new Ext4Error({ tool: "debugfs", reason: `${line} failed in ${image}`, stderr: errors.join("\n") })
    }
    return result.stdout
  })

/** What a write script's command may print when it succeeds. */
const quietSuccess = /^Allocated inode: \d+$/

/**
 * Runs a script with `debugfs -w`, its output merged into one file so each error line follows
 * its command's echo. Any line that is neither an echo nor a known success note fails the run,
 * naming the command it followed. Commands before a failing one have been applied: callers check
 * what they can first and keep scripts to one logical change.
 */
export const writeScript = (
  image: string,
  lines: ReadonlyArray<string>
): Effect.Effect<void, Ext4Error, CommandExecutor.CommandExecutor> =>
  Effect.scoped(
    Effect.gen(function* () {
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "banger-debugfs-"))),
        (created) => Effect.promise(() => fs.rm(created, { recursive: true, force: true }))
      )
      const outputFile = path.join(dir, "output")
      const script = new TextEncoder().encode(lines.map((line) => `${line}\n`).join(""))
      const result = yield* runTool(
        { tool: "debugfs", args: ["-w", "-f", "-", image], env, stdin: Stream.make(script), outputFile },
        () => Effect.void
      )
      const output = yield* Effect.tryPromise({
        try: () => fs.readFile(outputFile, "utf8"),
        catch: (error) => new Ext4Error({ tool: "debugfs", reason: `no output: ${String(error)}`, stderr: "" })
      })
      let last = "(start)"
      const problems: Array<string> = []
      for (const line of output.split("\n")) {
        if (line === "" || banner.test(line) || quietSuccess.test(line)) continue
        if (line.startsWith("debugfs: ")) last = line.slice("debugfs: ".length)
        else problems.push(`${last}: ${line}`)
      }
      if (problems.length > 0 || result.exitCode > 1) {
        return yield* new Ext4Error({
          tool: "debugfs",
          reason: `writing to ${image} failed at ${problems[0]?.split(": ")[0] ?? last}`,
          stderr: problems.join("\n").slice(-4000)
        })
      }
    })
  )

export type GuestKind = "file" | "directory" | "symlink" | "char" | "block" | "fifo" | "socket" | "unknown"

export interface GuestEntry {
  readonly ino: number
  readonly name: string
  readonly kind: GuestKind
  /** Permission bits (07777). */
  readonly mode: number
  readonly uid: number
  readonly gid: number
  readonly size: number
}

// A Map, not an object literal: biome's useSimpleNumberKeys rewrites octal keys wrongly.
const kinds = new Map<number, GuestKind>([
  [0o100000, "file"],
  [0o040000, "directory"],
  [0o120000, "symlink"],
  [0o020000, "char"],
  [0o060000, "block"],
  [0o010000, "fifo"],
  [0o140000, "socket"]
])

// `ls -p` records: `/ino/mode/uid/gid/name/size/` + newline; names never hold `/` but may hold newlines.
const record = /\/(\d+)\/([0-7]+)\/(-?\d+)\/(-?\d+)\/([^/]*)\/(\d*)\/\n/y

/** A directory's entries, `.` and `..` left out. */
export const parseListing = (output: string): Array<GuestEntry> => {
  const entries: Array<GuestEntry> = []
  let position = 0
  for (;;) {
    record.lastIndex = position
    const match = record.exec(output)
    if (match === null) break
    position = record.lastIndex
    const [, ino, mode, uid, gid, name, size] = match
    if (ino === "0" || name === "." || name === "..") continue
    const bits = Number.parseInt(mode!, 8)
    entries.push({
      ino: Number(ino),
      name: name!,
      kind: kinds.get(bits & 0o170000) ?? "unknown",
      mode: bits & 0o7777,
      // debugfs prints 32-bit ids with %d.
      uid: Number(uid) >>> 0,
      gid: Number(gid) >>> 0,
      size: size === "" ? 0 : Number(size)
    })
  }
  return entries
}

export const listDirectory = (image: string, ino: number) =>
  Effect.map(request(image, `ls -p ${inodeSpec(ino)}`), (bytes) => parseListing(bytes.toString("utf8")))

/** A symlink's target: fast links live in the inode (`stat` shows them), others in a block (`cat`). */
export const readLink = (image: string, entry: GuestEntry) =>
  Effect.gen(function* () {
    const stat = (yield* request(image, `stat ${inodeSpec(entry.ino)}`)).toString("utf8")
    const fast = /^Fast link dest: "(.*)"$/m.exec(stat)?.[1]
    const target = fast ?? (yield* request(image, `cat ${inodeSpec(entry.ino)}`)).toString("utf8")
    if (Buffer.byteLength(target, "utf8") !== entry.size) {
      return yield* new Ext4Error({
        tool: "debugfs",
        reason: `symlink inode ${entry.ino} reads as ${JSON.stringify(target)}, not ${entry.size} bytes`,
        stderr: ""
      })
    }
    return target
  })
