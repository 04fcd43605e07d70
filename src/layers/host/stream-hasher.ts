/**
 * The digest of a layer's uncompressed stream (its DiffID), and of big downloaded blobs.
 *
 * DiffIDs are hashed by node's crypto in-process, on chunks the main thread has anyway; with
 * `BANGER_DIGEST=openssl`, by an `openssl dgst` child whose pipe the kernel fills (teeSplice, see
 * decompressor-child.ts). The child takes ~1 s of SHA-256 off the main thread for a 1.5 GB layer,
 * but every byte then crosses a pipe once more, and a third process shares the two cores, which a
 * big pull keeps busy. Cold pulls on a loop-mounted ext4, interleaved, in-process against the
 * child: dev-80k 7.39-8.50 s against 8.47-9.45 s (4 runs each), the bench image 3.31-3.61 against
 * 3.31-3.73 s (5); only files-500k, whose main thread is its bound, is slower: 9.08-9.76 against
 * 9.17-9.47 s (3).
 *
 * Big downloads are hashed by an openssl child once written, reading the file itself
 * (`fileDigest`, see blob-cache/download.ts), where openssl is installed (nearly every Debian
 * system: ca-certificates needs it) unless `BANGER_DIGEST=node`: that file is not otherwise read
 * by the main thread.
 *
 * Each chunk goes into the child's 1 MiB pipe with a synchronous, non-blocking write: the kernel
 * copies it, so no chunk is held for the child (held chunks outlived young-generation GCs: queued
 * on a socket, they raised the 500k-file image's peak by 20 MiB). Only when the child is a whole
 * pipe behind is the rest of a chunk kept, and the caller waits for `caughtUp`. A child, not a
 * worker thread: a worker's isolate adds ~9 MiB to a peak that sits near its 200 MiB budget.
 *
 * Lives in the caller's scope: closing it closes the pipe, kills a child still running, and
 * always reaps it.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import { Effect, type Scope } from "effect"
import { FilesystemError } from "../../domain/errors.js"
import { type DigestAlgorithm, digestHexLength } from "../registry/digest.js"
import { closeQuietly, openPipe } from "./big-pipe.js"
import { cappedOutput } from "./capped-output.js"
import { onPath } from "./on-path.js"

export type HashAlgorithm = DigestAlgorithm

export interface StreamHasher {
  /**
   * Hashes `chunk` next. False when the child is a pipe's worth behind and has not taken all of
   * it: wait for `caughtUp` before the next update.
   */
  readonly update: (chunk: Uint8Array) => boolean
  readonly caughtUp: Effect.Effect<void, FilesystemError>
  /** The hex digest of everything given to `update` (or copied into `pipe`); once, after the last. */
  readonly digest: Effect.Effect<string, FilesystemError>
  /**
   * The child's input pipe (our write end) until `digest` closes it, for a caller that has the
   * kernel copy the bytes into it (teeSplice) instead of calling `update`. In-process: none.
   */
  readonly pipe: number | undefined
}

const PIPE_CAPACITY = 1024 * 1024
const OUTPUT_LIMIT = 4 * 1024
/** How long a child may take nothing from a full pipe before the hash fails. */
const STALL_LIMIT_MS = 60_000

/** Where big downloaded blobs are hashed (`fileDigest`): `openssl` where it is on PATH, unless `BANGER_DIGEST=node`. */
export const digestHasher = (): "openssl" | "node" =>
  process.env.BANGER_DIGEST !== "node" && onPath("openssl") ? "openssl" : "node"

/** Where DiffIDs are hashed: in-process, unless `BANGER_DIGEST=openssl` and openssl is on PATH. */
export const diffIdHasher = (): "openssl" | "node" =>
  process.env.BANGER_DIGEST === "openssl" && onPath("openssl") ? "openssl" : "node"

const inProcess = (algorithm: HashAlgorithm): StreamHasher => {
  const hash = createHash(algorithm)
  return {
    update: (chunk) => {
      hash.update(chunk)
      return true
    },
    caughtUp: Effect.void,
    digest: Effect.sync(() => hash.digest("hex")),
    pipe: undefined
  }
}

type Exit = { readonly code: number | null; readonly signal: NodeJS.Signals | null; readonly error?: Error }

interface Running {
  readonly child: ChildProcess
  /** The pipe's write end, ours; -1 once closed. */
  input: number
  readonly exited: Promise<Exit>
  readonly output: () => string
}

const closeInput = (running: Running) => {
  if (running.input < 0) return
  closeQuietly(running.input)
  running.input = -1
}

/** What the child reads: a pipe we write into, or a file it reads itself. */
type Input = { readonly _tag: "Pipe" } | { readonly _tag: "File"; readonly path: string }

/** The child's stdin, and our write end of it (-1 for a file). */
const openInput = (input: Input): { readonly read: number; readonly write: number } =>
  input._tag === "Pipe" ? openPipe(PIPE_CAPACITY, true) : { read: fs.openSync(input.path, "r"), write: -1 }

const start = (algorithm: HashAlgorithm, input: Input) =>
  Effect.try({
    try: (): Running => {
      const stdin = openInput(input)
      let child: ChildProcess
      try {
        child = spawn("openssl", ["dgst", `-${algorithm}`, "-r"], { stdio: [stdin.read, "pipe", "pipe"] })
      } catch (error) {
        if (stdin.write >= 0) closeQuietly(stdin.write)
        throw error
      } finally {
        // The child has its own copy of what it reads.
        closeQuietly(stdin.read)
      }
      // "close", not "exit": the digest is in stdout, which may still be unread when the process
      // has exited (under load it was, and the digest came out empty).
      const exited = new Promise<Exit>((resolve) => {
        child.once("error", (error) => resolve({ code: null, signal: null, error }))
        child.once("close", (code, signal) => resolve({ code, signal }))
      })
      const output = cappedOutput([child.stdout!, child.stderr!], OUTPUT_LIMIT)
      return { child, input: stdin.write, exited, output }
    },
    catch: (error) =>
      new FilesystemError({
        path: input._tag === "File" ? input.path : "openssl",
        reason: `cannot start openssl dgst: ${error instanceof Error ? error.message : String(error)}`
      })
  })

const reap = (running: Running) =>
  Effect.gen(function* () {
    closeInput(running)
    const { child } = running
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    yield* Effect.promise(() => running.exited)
  })

const failure = (reason: string) => new FilesystemError({ path: "openssl", reason: `openssl dgst: ${reason}` })

/** The child's verdict: the hex digest of all it read. */
const digestOf = (running: Running, algorithm: HashAlgorithm) =>
  Effect.gen(function* () {
    const exit = yield* Effect.promise(() => running.exited)
    if (exit.error) return yield* failure(`cannot run openssl: ${exit.error.message}`)
    const text = running.output()
    if (exit.code !== 0) {
      const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`
      return yield* failure(`${how}${text ? `: ${text}` : ""}`)
    }
    const hex = /^([0-9a-f]+) /.exec(text)?.[1]
    if (hex === undefined || hex.length !== digestHexLength(algorithm)) {
      return yield* failure(`unexpected output "${text.slice(0, 200)}"`)
    }
    return hex
  })

const inChild = (algorithm: HashAlgorithm) =>
  Effect.map(Effect.acquireRelease(start(algorithm, { _tag: "Pipe" }), reap), (running): StreamHasher => {
    /** The rest of a chunk the full pipe did not take. */
    let pending: Uint8Array | undefined
    /** The child is gone (EPIPE): its exit status says why, at `digest`. */
    let broken = false

    /** Writes what fits of `bytes`; what did not fit. */
    const writeSome = (bytes: Uint8Array): Uint8Array | undefined => {
      let offset = 0
      while (offset < bytes.length) {
        try {
          offset += fs.writeSync(running.input, bytes, offset, bytes.length - offset)
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code
          if (code === "EAGAIN") return bytes.subarray(offset)
          broken = true
          return undefined
        }
      }
      return undefined
    }

    const caughtUp: Effect.Effect<void, FilesystemError> = Effect.gen(function* () {
      let since = Date.now()
      while (pending !== undefined && !broken) {
        yield* Effect.sleep("1 millis")
        const before = pending.length
        pending = writeSome(pending)
        if (pending !== undefined && pending.length === before) {
          if (Date.now() - since > STALL_LIMIT_MS) return yield* failure("stopped taking input")
        } else {
          since = Date.now()
        }
      }
    })

    return {
      update: (chunk) => {
        if (broken || running.input < 0) return true
        pending = writeSome(chunk)
        return pending === undefined
      },
      caughtUp,
      // Not the number itself: once closed, a descriptor's number may belong to another file.
      get pipe() {
        return running.input < 0 ? undefined : running.input
      },
      digest: Effect.zipRight(
        caughtUp,
        Effect.suspend(() => {
          closeInput(running)
          return digestOf(running, algorithm)
        })
      )
    }
  })

/**
 * The hex digest of a whole file, by an openssl child that reads it itself: for a blob just
 * written, whose bytes the main thread then never touches again. Only where `digestHasher()` says
 * openssl. Scoped like the stream hasher.
 */
export const fileDigest = (
  algorithm: HashAlgorithm,
  path: string
): Effect.Effect<string, FilesystemError, Scope.Scope> =>
  Effect.flatMap(Effect.acquireRelease(start(algorithm, { _tag: "File", path }), reap), (running) =>
    digestOf(running, algorithm)
  )

/** A hasher for one stream: in-process, or in an openssl child (see diffIdHasher). */
export const streamHasher = (algorithm: HashAlgorithm): Effect.Effect<StreamHasher, FilesystemError, Scope.Scope> =>
  diffIdHasher() === "openssl" ? inChild(algorithm) : Effect.succeed(inProcess(algorithm))
