import * as path from "node:path"
import { type CommandExecutor, FileSystem } from "@effect/platform"
import { Effect, Stream } from "effect"
import { Ext4Error } from "../../../src/domain/errors.js"
import { runTool } from "../../../src/layers/ext4/process.js"

/** One directory entry as `ls -p` prints it: `/ino/mode/uid/gid/name/size/` (size empty for dirs). */
export interface ListedEntry {
  readonly ino: number
  readonly mode: number
  readonly uid: number
  readonly gid: number
  readonly name: string
  readonly size: number | undefined
}

export type Listing =
  | { readonly _tag: "Listed"; readonly entries: ReadonlyArray<ListedEntry> }
  | { readonly _tag: "Failed"; readonly message: string }

// Names are printed raw and may hold newlines, but never `/`, so records are parsed by their
// slashes rather than by lines.
const record = /\/(\d+)\/([0-7]+)\/(-?\d+)\/(-?\d+)\/([^/]*)\/(\d*)\/\n/y

export const listCommand = (spec: string) => `ls -p -- ${spec}`

/**
 * Reads `ls -p` records from `position`, stopping at the first text that is not one; returns them
 * and where they end. `.`, `..` and empty slots are left out.
 */
export const parseRecords = (output: string, position: number): [Array<ListedEntry>, number] => {
  const entries: Array<ListedEntry> = []
  for (;;) {
    record.lastIndex = position
    const match = record.exec(output)
    if (match === null) return [entries, position]
    position = record.lastIndex
    const [, ino, mode, uid, gid, name, size] = match
    if (ino === "0" || name === "." || name === "..") continue
    entries.push({
      ino: Number(ino),
      mode: Number.parseInt(mode!, 8),
      // debugfs prints 32-bit ids with %d.
      uid: Number(uid) >>> 0,
      gid: Number(gid) >>> 0,
      name: name!,
      size: size === "" ? undefined : Number(size)
    })
  }
}

/**
 * Splits the merged output of a script of `ls -p` commands into one listing per command. Each
 * command's echo (`debugfs: <line>`) is matched exactly, and records are consumed before looking
 * for the next echo, so names that look like echoes or records cannot derail the parse.
 */
export const parseListings = (output: string, specs: ReadonlyArray<string>): Array<Listing> | string => {
  const echo = (index: number) => `debugfs: ${listCommand(specs[index]!)}\n`
  const results: Array<Listing> = []
  let position = specs.length === 0 ? output.length : output.indexOf(echo(0))
  if (position < 0) return `no output for the first listing: ${output.slice(0, 500)}`
  for (let index = 0; index < specs.length; index++) {
    if (!output.startsWith(echo(index), position)) {
      return `unexpected debugfs output before "${listCommand(specs[index]!)}": ${output.slice(position, position + 200)}`
    }
    const [entries, end] = parseRecords(output, position + echo(index).length)
    const next = index + 1 < specs.length ? output.indexOf(echo(index + 1), end) : output.length
    const stop = next < 0 ? output.length : next
    const leftover = output.slice(end, stop).trim()
    position = stop
    results.push(leftover === "" ? { _tag: "Listed", entries } : { _tag: "Failed", message: leftover })
  }
  return results
}

let runs = 0

/**
 * Lists directories (by debugfs inode spec or quoted path) in one read-only debugfs run whose
 * output goes to a file in `workDir`.
 */
export const listDirectories = (
  image: string,
  specs: ReadonlyArray<string>,
  workDir: string
): Effect.Effect<Array<Listing>, Ext4Error, CommandExecutor.CommandExecutor | FileSystem.FileSystem> =>
  Effect.gen(function* () {
    if (specs.length === 0) return []
    const fs = yield* FileSystem.FileSystem
    const script = specs.map((spec) => `${listCommand(spec)}\n`).join("")
    const outputFile = path.join(workDir, `listing-${process.pid}-${runs++}.out`)
    const result = yield* runTool(
      { tool: "debugfs", args: ["-f", "-", image], stdin: Stream.make(new TextEncoder().encode(script)), outputFile },
      () => Effect.void
    )
    const output = yield* fs
      .readFileString(outputFile)
      .pipe(
        Effect.mapError(
          (error) =>
            new Ext4Error({ tool: "debugfs", reason: `could not read its output: ${error.message}`, stderr: "" })
        )
      )
    yield* fs.remove(outputFile).pipe(Effect.ignore)
    const parsed = parseListings(output, specs)
    if (typeof parsed === "string" || result.exitCode !== 0) {
      return yield* new Ext4Error({
        tool: "debugfs",
        reason: typeof parsed === "string" ? parsed : `exited with ${result.exitCode} while listing directories`,
        stderr: output.slice(-4000)
      })
    }
    return parsed
  })
