import * as path from "node:path"
import { Effect, Layer } from "effect"
import { FilesystemError } from "../../domain/errors.js"
import type { Linkage } from "./elf.js"
import {
  type Access,
  type FileKind,
  HostProbe,
  type HostProbeShape,
  type RunResult,
  type SpaceInfo
} from "./host-probe.js"

export interface FakeFile {
  /** Default "file". */
  readonly kind?: FileKind
  /** Default 0o755 for files, 0o644 otherwise. */
  readonly mode?: number
  /** What this process may open it for (and, for a directory, whether it can create files in it). Default read-write. */
  readonly access?: "read-write" | "read" | "none"
  readonly text?: string
  readonly linkage?: Linkage
  /** What running it prints and how it exits; a file without `run` fails to start. */
  readonly run?: RunResult
  /** What particular arguments (joined by spaces) make it print, where they differ from `run`. */
  readonly runs?: Readonly<Record<string, RunResult>>
}

/** A host described as data: the files that exist, the environment, the filesystem under the state dir. */
export interface FakeHost {
  readonly env?: Readonly<Record<string, string>>
  readonly files?: Readonly<Record<string, FakeFile>>
  readonly space?: SpaceInfo
  readonly reflink?: boolean
}

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

const denied = (file: string): Access => ({
  _tag: "Denied",
  code: "EACCES",
  reason: `EACCES: permission denied, open '${file}'`
})

/** A `HostProbe` answering from `host` alone, for unit tests of the checks. */
export const makeHostProbeFake = (host: FakeHost): HostProbeShape => {
  const files = host.files ?? {}
  const env = host.env ?? {}
  const find = (file: string) => files[file]
  const executable = (file: string) => {
    const entry = find(file)
    return entry !== undefined && (entry.kind ?? "file") === "file" && ((entry.mode ?? 0o755) & 0o111) !== 0
  }
  return {
    env: (name) => Effect.succeed(env[name]),
    stat: (file) =>
      Effect.sync(() => {
        const entry = find(file)
        if (entry === undefined) return undefined
        const kind = entry.kind ?? "file"
        return { kind, mode: entry.mode ?? (kind === "file" ? 0o755 : 0o644), uid: 0, gid: 0 }
      }),
    open: (file, mode) =>
      Effect.sync((): Access => {
        const entry = find(file)
        if (entry === undefined)
          return { _tag: "Denied", code: "ENOENT", reason: `ENOENT: no such file or directory, open '${file}'` }
        const access = entry.access ?? "read-write"
        if (access === "none" || (mode === "read-write" && access === "read")) return denied(file)
        return { _tag: "Granted" }
      }),
    which: (command) =>
      Effect.sync(() =>
        (env.PATH ?? DEFAULT_PATH)
          .split(":")
          .map((dir) => path.join(dir, command))
          .find(executable)
      ),
    run: (file, args) =>
      Effect.sync(
        (): RunResult =>
          find(file)?.runs?.[args.join(" ")] ??
          find(file)?.run ?? { exitCode: null, output: `ENOENT: spawn ${file}: no such file or directory` }
      ),
    readText: (file) => Effect.sync(() => find(file)?.text),
    linkage: (file) => Effect.sync(() => find(file)?.linkage ?? "not-elf"),
    space: (dir) =>
      host.space === undefined
        ? Effect.fail(new FilesystemError({ path: dir, reason: "ENOENT: no such file or directory" }))
        : Effect.succeed(host.space),
    writable: (dir) =>
      Effect.sync((): Access => {
        const entry = find(dir)
        if (entry === undefined) return { _tag: "Denied", code: "ENOENT", reason: `ENOENT: no such directory '${dir}'` }
        return (entry.access ?? "read-write") === "read-write" ? { _tag: "Granted" } : denied(dir)
      }),
    reflinkSupported: () => Effect.succeed(host.reflink ?? false)
  }
}

export const hostProbeFake = (host: FakeHost) => Layer.succeed(HostProbe, makeHostProbeFake(host))
