import { randomBytes } from "node:crypto"
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

/** A read-only request of a batch; `target` is an inode spec or a quoted path. */
export interface ReadCommand {
  readonly _tag: "List" | "Stat" | "Dump"
  readonly target: string
}

const commandLine = (command: ReadCommand, dumpFile: string) =>
  command._tag === "List"
    ? `ls -p ${command.target}`
    : command._tag === "Stat"
      ? `stat ${command.target}`
      : `dump ${command.target} ${quote(dumpFile)}`

/**
 * Read-only requests in one debugfs run: one process instead of one per request. Each answer is
 * the command's output (List, Stat) or the dumped file's bytes (Dump), or undefined when it
 * failed. The output is cut at comment lines holding a random nonce, which debugfs echoes as
 * they are: nothing an image holds (names, link targets) can forge one, so no answer is ever
 * read as another's.
 */
export const readBatch = (
  image: string,
  commands: ReadonlyArray<ReadCommand>
): Effect.Effect<Array<string | Uint8Array | undefined>, Ext4Error, CommandExecutor.CommandExecutor> =>
  Effect.scoped(
    Effect.gen(function* () {
      // Only dumps need a place on the host; most batches have none, and skip making one.
      const dir = commands.some((command) => command._tag === "Dump")
        ? yield* Effect.acquireRelease(
            Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "banger-debugfs-"))),
            (created) => Effect.promise(() => fs.rm(created, { recursive: true, force: true }))
          )
        : os.tmpdir()
      const dumpFile = (index: number) => path.join(dir, `dump-${index}`)
      const nonce = randomBytes(16).toString("hex")
      const marker = (index: number) => `# ${nonce} ${index}`
      const lines = commands.map((command, index) => commandLine(command, dumpFile(index)))
      const script = [...lines.flatMap((line, index) => [marker(index), line]), marker(lines.length)]
      // Only stdout: the echoes, the markers and what succeeded. A failed command's errors go to
      // stderr, leaving its answer empty or cut short, which its parser or size check rejects; a
      // debugfs that could not open the image at all leaves every answer so, and the caller's
      // single requests then report why.
      const result = yield* runTool(
        {
          tool: "debugfs",
          args: ["-f", "-", image],
          env,
          stdin: Stream.make(new TextEncoder().encode(script.map((line) => `${line}\n`).join("")))
        },
        collectBytes
      )
      const text = `\n${result.stdout.toString("utf8")}`
      const answers: Array<string | Uint8Array | undefined> = []
      let from = text.indexOf(`\n${marker(0)}\n`)
      for (let index = 0; index < lines.length; index++) {
        const next = from === -1 ? -1 : text.indexOf(`\n${marker(index + 1)}\n`, from + 1)
        const echo = `debugfs: ${lines[index]}\n`
        const segment = from === -1 || next === -1 ? undefined : text.slice(from + marker(index).length + 2, next + 1)
        from = next
        if (segment === undefined || !segment.startsWith(echo)) {
          answers.push(undefined)
          continue
        }
        const answer = segment.slice(echo.length)
        if (commands[index]!._tag !== "Dump") answers.push(answer)
        else if (answer !== "") answers.push(undefined)
        else
          answers.push(
            yield* Effect.promise(() =>
              fs.readFile(dumpFile(index)).then(
                (bytes) => new Uint8Array(bytes),
                () => undefined
              )
            )
          )
      }
      return answers
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

interface Listing {
  /** The directory's own inode, from its `.` entry. */
  readonly ino: number | undefined
  readonly entries: Array<GuestEntry>
  /** Where the records ended. */
  readonly end: number
}

const parseRecords = (output: string): Listing => {
  const entries: Array<GuestEntry> = []
  let ino: number | undefined
  let position = 0
  for (;;) {
    record.lastIndex = position
    const match = record.exec(output)
    if (match === null) break
    position = record.lastIndex
    const [, inode, mode, uid, gid, name, size] = match
    if (name === ".") ino = Number(inode)
    if (inode === "0" || name === "." || name === "..") continue
    const bits = Number.parseInt(mode!, 8)
    entries.push({
      ino: Number(inode),
      name: name!,
      kind: kinds.get(bits & 0o170000) ?? "unknown",
      mode: bits & 0o7777,
      // debugfs prints 32-bit ids with %d.
      uid: Number(uid) >>> 0,
      gid: Number(gid) >>> 0,
      size: size === "" ? 0 : Number(size)
    })
  }
  return { ino, entries, end: position }
}

/** A directory's entries, `.` and `..` left out. */
export const parseListing = (output: string): Array<GuestEntry> => parseRecords(output).entries

/**
 * One `ls -p` of a batch: the listed directory's inode (from its `.` entry) and its entries, or
 * undefined unless the output is nothing but records (an error, a partial listing).
 */
export const parseListingOutput = (
  output: string
): { readonly ino: number; readonly entries: Array<GuestEntry> } | undefined => {
  const listing = parseRecords(output)
  const rest = output.slice(listing.end)
  return listing.ino !== undefined && (rest === "" || rest === "\n")
    ? { ino: listing.ino, entries: listing.entries }
    : undefined
}

export interface InodeStat {
  readonly ino: number
  /** debugfs's word: regular, directory, symlink, … */
  readonly type: string
  readonly size: number
  /** A fast symlink's target, stored in the inode itself. */
  readonly fastLink: string | undefined
}

const FAST_LINK = Buffer.from('\nFast link dest: "')

/**
 * A fast symlink's target from `stat`'s output: debugfs prints exactly `size` bytes of it in
 * quotes, last. Nothing before that line comes from the image, so its first occurrence is the
 * real one, and a target holding quotes, newlines or lines like it is taken whole.
 */
export const fastLinkTarget = (stat: Uint8Array, size: number): string | undefined => {
  const output = Buffer.from(stat.buffer, stat.byteOffset, stat.byteLength)
  const at = output.indexOf(FAST_LINK)
  if (at === -1) return undefined
  const start = at + FAST_LINK.length
  if (output.subarray(start + size, start + size + 2).toString("latin1") !== '"\n') return undefined
  const target = output.subarray(start, start + size)
  const text = target.toString("utf8")
  // A target that is not UTF-8 would not survive the round trip: not read this way.
  return Buffer.from(text, "utf8").equals(target) ? text : undefined
}

/** One `stat` of a batch, or undefined when it failed. */
export const parseStat = (output: string): InodeStat | undefined => {
  const head = /^Inode: (\d+)\s+Type: (\S+)/.exec(output)
  const size = /^User: .*\bSize: (\d+)$/m.exec(output)
  if (head === null || size === null) return undefined
  return {
    ino: Number(head[1]),
    type: head[2]!,
    size: Number(size[1]),
    fastLink: fastLinkTarget(Buffer.from(output, "utf8"), Number(size[1]))
  }
}

export const listDirectory = (image: string, ino: number) =>
  Effect.map(request(image, `ls -p ${inodeSpec(ino)}`), (bytes) => parseListing(bytes.toString("utf8")))

/** A symlink's target: fast links live in the inode (`stat` shows them), others in a block (`cat`). */
export const readLink = (image: string, entry: GuestEntry) =>
  Effect.gen(function* () {
    const fast = fastLinkTarget(yield* request(image, `stat ${inodeSpec(entry.ino)}`), entry.size)
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
