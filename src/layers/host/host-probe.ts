import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { Context, Effect, Layer } from "effect"
import { describeSystemError, FilesystemError } from "../../domain/errors.js"
import { DiskCopy } from "../disk/disk-copy.js"
import { elfLinkage, type Linkage } from "./elf.js"
import { findOnPath } from "./on-path.js"

export type { Linkage } from "./elf.js"

export type FileKind = "file" | "directory" | "character-device" | "block-device" | "socket" | "fifo" | "other"

export interface FileInfo {
  readonly kind: FileKind
  /** Permission bits only (`0o600`). */
  readonly mode: number
  readonly uid: number
  readonly gid: number
}

/** Whether opening (or creating) worked, and the errno code when not. */
export type Access =
  | { readonly _tag: "Granted" }
  | { readonly _tag: "Denied"; readonly code: string; readonly reason: string }

export interface RunResult {
  /** null when the program could not be started, was killed, or overran the time bound. */
  readonly exitCode: number | null
  /** stdout then stderr (versions land on either, depending on the tool), or why it did not run. */
  readonly output: string
}

export interface SpaceInfo {
  readonly availableBytes: number
  readonly totalBytes: number
}

/**
 * The facts about this host that `banger doctor` reads: files and devices, programs and their
 * output, kernel settings, filesystems. Every probe is total for the expected outcomes (a missing
 * file is `undefined`, a refused open is `Denied`), so checks only interpret answers.
 */
export interface HostProbeShape {
  readonly env: (name: string) => Effect.Effect<string | undefined>
  /** Follows symlinks; undefined when nothing is there. */
  readonly stat: (file: string) => Effect.Effect<FileInfo | undefined>
  /** Opens and closes `file` as this process would use it: devices show group membership for real. */
  readonly open: (file: string, mode: "read" | "read-write") => Effect.Effect<Access>
  /** The first executable `command` on PATH. */
  readonly which: (command: string) => Effect.Effect<string | undefined>
  /** Runs a program to completion (bounded in time), e.g. for `--version`. */
  readonly run: (file: string, args: ReadonlyArray<string>) => Effect.Effect<RunResult>
  /** A small text file (`/proc/sys/...`), or undefined when it cannot be read. */
  readonly readText: (file: string) => Effect.Effect<string | undefined>
  readonly linkage: (file: string) => Effect.Effect<Linkage>
  readonly space: (dir: string) => Effect.Effect<SpaceInfo, FilesystemError>
  /** Creates and removes a file in `dir`: the only proof that works for root and read-only mounts alike. */
  readonly writable: (dir: string) => Effect.Effect<Access>
  readonly reflinkSupported: (dir: string) => Effect.Effect<boolean, FilesystemError>
}

/** How long a `--version` may take before the program counts as broken. */
const RUN_TIMEOUT_MS = 10_000
/** Enough for the ELF header and program headers of any real executable. */
const ELF_HEAD_BYTES = 64 * 1024

const kindOf = (stats: fs.Stats): FileKind =>
  stats.isFile()
    ? "file"
    : stats.isDirectory()
      ? "directory"
      : stats.isCharacterDevice()
        ? "character-device"
        : stats.isBlockDevice()
          ? "block-device"
          : stats.isSocket()
            ? "socket"
            : stats.isFIFO()
              ? "fifo"
              : "other"

const denied = (error: unknown): Access => ({
  _tag: "Denied",
  code: (error as NodeJS.ErrnoException).code ?? "ERROR",
  reason: describeSystemError(error)
})

const readHead = (file: string): Uint8Array => {
  const handle = fs.openSync(file, "r")
  try {
    const buffer = Buffer.alloc(ELF_HEAD_BYTES)
    const read = fs.readSync(handle, buffer, 0, buffer.length, 0)
    return buffer.subarray(0, read)
  } finally {
    fs.closeSync(handle)
  }
}

export const makeHostProbe = (reflinkSupported: HostProbeShape["reflinkSupported"]): HostProbeShape => ({
  env: (name) => Effect.sync(() => process.env[name] || undefined),
  stat: (file) =>
    Effect.try(() => {
      const stats = fs.statSync(file, { throwIfNoEntry: false })
      return stats && { kind: kindOf(stats), mode: stats.mode & 0o7777, uid: stats.uid, gid: stats.gid }
    }).pipe(Effect.orElseSucceed(() => undefined)),
  open: (file, mode) =>
    Effect.sync((): Access => {
      try {
        fs.closeSync(fs.openSync(file, mode === "read" ? "r" : "r+"))
        return { _tag: "Granted" }
      } catch (error) {
        return denied(error)
      }
    }),
  which: (command) => Effect.sync(() => findOnPath(command)),
  run: (file, args) =>
    Effect.async<RunResult>((resume) => {
      const child = execFile(
        file,
        [...args],
        { timeout: RUN_TIMEOUT_MS, killSignal: "SIGKILL", env: { ...process.env, LC_ALL: "C" } },
        (error, stdout, stderr) => {
          const output = `${stdout}${stderr}`.trim()
          if (error && typeof error.code !== "number") {
            resume(Effect.succeed({ exitCode: null, output: output || describeSystemError(error) }))
          } else {
            resume(Effect.succeed({ exitCode: error ? Number(error.code) : 0, output }))
          }
        }
      )
      return Effect.sync(() => child.kill("SIGKILL"))
    }),
  readText: (file) => Effect.try(() => fs.readFileSync(file, "utf8")).pipe(Effect.orElseSucceed(() => undefined)),
  linkage: (file) => Effect.try(() => elfLinkage(readHead(file))).pipe(Effect.orElseSucceed(() => "not-elf" as const)),
  space: (dir) =>
    Effect.try({
      try: () => {
        const stats = fs.statfsSync(dir)
        return { availableBytes: stats.bavail * stats.bsize, totalBytes: stats.blocks * stats.bsize }
      },
      catch: (error) => new FilesystemError({ path: dir, reason: describeSystemError(error) })
    }),
  writable: (dir) =>
    Effect.sync((): Access => {
      const probe = path.join(dir, `.banger-doctor-${process.pid}`)
      try {
        fs.closeSync(fs.openSync(probe, "wx"))
        fs.rmSync(probe, { force: true })
        return { _tag: "Granted" }
      } catch (error) {
        return denied(error)
      }
    }),
  reflinkSupported
})

export class HostProbe extends Context.Tag("banger/HostProbe")<HostProbe, HostProbeShape>() {
  /** The real host; reflink probes go through `DiskCopy` (needs `NodeContext.layer`). */
  static readonly layer = Layer.effect(
    HostProbe,
    Effect.map(DiskCopy, (disk) => makeHostProbe(disk.reflinkSupported))
  ).pipe(Layer.provide(DiskCopy.layer))
}
