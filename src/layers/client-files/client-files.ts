import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { Transform, type Writable } from "node:stream"
import { pipeline } from "node:stream/promises"
import { Context, Effect, Layer } from "effect"
import * as tar from "tar-stream"
import { ClientPathRefused, FilesystemError } from "../../domain/errors.js"
import type { Peer } from "../../domain/peer.js"
import { READ_FILE_SCRIPT, READ_TREE_SCRIPT, readFailure, setprivArgs } from "./as-peer.js"

/** No boot file or catalog comes near this; a stream beyond it is a device or a mistake. */
export const MAX_CLIENT_BYTES = 4 * 1024 ** 3

export type ClientReadError = ClientPathRefused | FilesystemError

export interface ClientFilesShape {
  /** The daemon's own uid: its clients' paths are read with the daemon's rights. */
  readonly daemonUid: number
  /** `alice (uid 1001)`, or `uid 1001` for a uid without a name. */
  readonly describe: (peer: Peer) => Effect.Effect<string>
  /** Copies the regular file `source` into `target` (a new file), opened with the peer's rights. */
  readonly copyFileAs: (peer: Peer, source: string, target: string) => Effect.Effect<void, ClientReadError>
  /** Copies a directory's subdirectories and regular files into `target` (new), read with the peer's rights. */
  readonly copyTreeAs: (peer: Peer, source: string, target: string) => Effect.Effect<void, ClientReadError>
}

/**
 * Reads of host paths a client named, done with that client's rights: by `setpriv` children
 * running with its uid, gid and groups, which open the path and stream the bytes to the daemon.
 * The daemon never opens the client's path itself, so nothing can be swapped between a check and
 * the open, and what the kernel lets that user read is exactly what gets through.
 */
export class ClientFiles extends Context.Tag("banger/ClientFiles")<ClientFiles, ClientFilesShape>() {
  static readonly layer = Layer.sync(ClientFiles, () => makeClientFiles(process.getuid?.() ?? 0))
}

export const userName = (uid: number, passwd: string): string | undefined =>
  passwd
    .split("\n")
    .map((line) => line.split(":"))
    .find((fields) => fields[2] === String(uid))?.[0]

const describePeer = (peer: Peer) =>
  Effect.sync(() => {
    let passwd = ""
    try {
      passwd = fs.readFileSync("/etc/passwd", "utf8")
    } catch {}
    const name = userName(peer.uid, passwd)
    return name === undefined ? `uid ${peer.uid}` : `${name} (uid ${peer.uid})`
  })

/** Stops a stream at `limit` bytes, so a device or a growing file cannot fill the state dir. */
const capped = (limit: number) => {
  let seen = 0
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length
      done(seen > limit ? new Error(`larger than ${limit / 1024 ** 3} GiB`) : null, chunk)
    }
  })
}

interface PeerRun {
  readonly status: number | null
  readonly stderr: string
  /** The sink's failure (size cap, a bad tar entry), if the child's output was refused. */
  readonly sinkError: Error | undefined
}

/** Runs `script` as the peer with `source` as its argument, its stdout into `sink`. */
const runAsPeer = (peer: Peer, script: string, source: string, sink: Writable, signal: AbortSignal) =>
  new Promise<PeerRun>((resolve) => {
    const child = spawn("setpriv", setprivArgs(peer, ["/bin/sh", "-c", script, "sh", source]), {
      cwd: "/",
      // The errno texts readFailure looks for are the C locale's.
      env: { PATH: "/usr/local/bin:/usr/bin:/bin", LC_ALL: "C" },
      stdio: ["ignore", "pipe", "pipe"],
      signal
    })
    let stderr = ""
    child.stderr.setEncoding("utf8").on("data", (text: string) => {
      if (stderr.length < 4096) stderr += text
    })
    const sunk = pipeline(child.stdout, capped(MAX_CLIENT_BYTES), sink).then(
      () => undefined,
      (error: Error) => {
        child.kill("SIGKILL")
        return error
      }
    )
    const exited = new Promise<number | null>((done) => {
      child.once("error", (error) => {
        stderr += String(error)
        done(null)
      })
      child.once("close", (code) => done(code))
    })
    void Promise.all([exited, sunk]).then(([status, sinkError]) => resolve({ status, stderr, sinkError }))
  })

/** Unpacks the peer's tar stream into `target`: directories and regular files only, never outside it. */
export const extractInto = (target: string) => {
  const extract = tar.extract()
  const done = (async () => {
    for await (const entry of extract) {
      const name = path.posix.normalize(entry.header.name.replace(/^(\.\/)+/, "")).replace(/\/+$/, "")
      const unsafe = name === "" || name === "." || path.posix.isAbsolute(name) || name.split("/").includes("..")
      if (unsafe) throw new Error(`unsafe entry name in the directory's stream: ${JSON.stringify(entry.header.name)}`)
      const to = path.join(target, name)
      // Permissions only: no setuid, setgid or sticky bit, and nothing writable but by the daemon.
      const mode = (entry.header.mode ?? 0o644) & 0o755
      if (entry.header.type === "directory") {
        fs.mkdirSync(to, { recursive: true, mode: mode | 0o700 })
        entry.resume()
      } else if (entry.header.type === "file") {
        fs.mkdirSync(path.dirname(to), { recursive: true, mode: 0o755 })
        await pipeline(entry, fs.createWriteStream(to, { flags: "wx", mode }))
      } else {
        throw new Error(`unexpected ${entry.header.type} entry ${JSON.stringify(name)} in the directory's stream`)
      }
    }
  })()
  // The sink the child's stream goes into ends only once every entry is on disk. A bad entry
  // fails it at once (the child is then killed), not after the rest of the stream has come in.
  const sink = new Transform({
    transform(chunk, _encoding, next) {
      if (!extract.write(chunk)) extract.once("drain", () => next())
      else next()
    },
    flush(finished) {
      extract.end(() => undefined)
      done.then(() => finished(), finished)
    }
  })
  done.catch((error: Error) => sink.destroy(error))
  return sink
}

export const makeClientFiles = (daemonUid: number): ClientFilesShape => {
  const read = (peer: Peer, source: string, kind: "file" | "directory", open: () => Writable) =>
    Effect.gen(function* () {
      const run = yield* Effect.tryPromise({
        try: (signal) => runAsPeer(peer, kind === "file" ? READ_FILE_SCRIPT : READ_TREE_SCRIPT, source, open(), signal),
        catch: (error) => new FilesystemError({ path: source, reason: `cannot read it as its user: ${String(error)}` })
      })
      const failed = run.status !== 0 || (kind === "directory" && run.stderr.trim() !== "")
      if (!failed && run.sinkError === undefined) return
      if (!failed && run.sinkError !== undefined) {
        return yield* new FilesystemError({ path: source, reason: run.sinkError.message })
      }
      const failure = readFailure(run.status, run.stderr, kind)
      if (!failure.refused) return yield* new FilesystemError({ path: source, reason: failure.reason })
      const user = yield* describePeer(peer)
      return yield* new ClientPathRefused({ path: source, user, reason: `${failure.reason} by user ${user}` })
    })
  return {
    daemonUid,
    describe: describePeer,
    copyFileAs: (peer, source, target) =>
      read(peer, source, "file", () => fs.createWriteStream(target, { flags: "wx", mode: 0o644 })),
    copyTreeAs: (peer, source, target) =>
      Effect.zipRight(
        Effect.try({
          try: () => fs.mkdirSync(target, { mode: 0o755 }),
          catch: (error) => new FilesystemError({ path: target, reason: String(error) })
        }),
        read(peer, source, "directory", () => extractInto(target))
      )
  }
}
