/**
 * A decompressor run as a child process (zstd, and igzip for gzip where it is installed), as a
 * `Pull` of its output. Its stdout is a pipe of 1 MiB (native/pipe.c) rather than Node's child
 * stdio, a socketpair of ~200 KiB: igzip writes a megabyte at a time, so through the socketpair it
 * waited for the main thread to take each megabyte before inflating the next, and the two took
 * turns instead of overlapping (dev-80k's 1.37 GB layer, igzip into a main thread doing a pull's
 * work: 5.4 s through the socketpair, 3.1 s through the pipe, 2.6 s for igzip alone).
 *
 * Its stdin is a complete blob's descriptor, read by the child itself, or a pipe fed from a blob
 * still downloading. Its output may also be copied, by the kernel, into another pipe: the DiffID
 * hasher's (see `childPull`). Everything lives in the caller's scope: closing it SIGKILLs a child
 * still running, and the child is always reaped.
 */
import { type ChildProcess, spawn } from "node:child_process"
import type * as net from "node:net"
import { Effect, type Scope } from "effect"
import { FilesystemError, InvalidLayer } from "../../domain/errors.js"
import { closeQuietly, openPipe, teeSplice } from "../host/big-pipe.js"
import { cappedOutput } from "../host/capped-output.js"
import type { BlobReader } from "./blob-reader.js"
import type { PullSource } from "./byte-reader.js"
import { ChunkPool } from "./chunk-pool.js"
import { feed } from "./feed.js"
import { pipePull, type ReadablePull } from "./readable-pull.js"

export interface Decompressor {
  /** The program and its arguments to decompress stdin to stdout. */
  readonly command: string
  readonly args: ReadonlyArray<string>
  /** Its failure in words, from its exit and (capped) stderr. */
  readonly describeFailure: (exit: string, stderr: string) => string
}

/** What the child reads: a complete blob's open descriptor, or a blob fed through a pipe. */
export type ChildInput<E> =
  | { readonly _tag: "Descriptor"; readonly fd: number }
  | { readonly _tag: "Fed"; readonly reader: BlobReader<E> }

/** The most an unprivileged process may ask for by default (/proc/sys/fs/pipe-max-size). */
const OUTPUT_PIPE_CAPACITY = 1024 * 1024

const STDERR_LIMIT = 8 * 1024

type Exit =
  | { readonly _tag: "Exited"; readonly code: number | null; readonly signal: NodeJS.Signals | null }
  | { readonly _tag: "SpawnFailed"; readonly error: Error }

interface Running<E> {
  readonly child: ChildProcess
  /** Its stdout, read into the pull's pool; `output.socket` is the pipe's read end. */
  readonly output: ReadablePull<E | InvalidLayer | FilesystemError> & { readonly socket: net.Socket }
  readonly exited: Promise<Exit>
  readonly stderrDone: Promise<void>
  readonly stderrText: () => string
}

const reasonOf = (error: unknown) => (error instanceof Error ? error.message : String(error))

/**
 * The read end of a pipe that receives `output`'s bytes, which the kernel also copies into
 * `copyTo` (teeSplice): `output`'s read end when there is nothing to copy to. Takes `output.read`.
 */
const copiedOutput = (output: number, copyTo: number | undefined): number => {
  if (copyTo === undefined) return output
  try {
    const moved = openPipe(OUTPUT_PIPE_CAPACITY)
    try {
      teeSplice(output, copyTo, moved.write)
    } catch (error) {
      closeQuietly(moved.read)
      throw error
    } finally {
      closeQuietly(moved.write)
    }
    return moved.read
  } finally {
    // The thread has its own copy.
    closeQuietly(output)
  }
}

const start = <E>(
  decompressor: Decompressor,
  input: ChildInput<E>,
  blob: { readonly name: string },
  pool: ChunkPool,
  copyTo: number | undefined
) =>
  Effect.try({
    try: (): Running<E> => {
      const output = openPipe(OUTPUT_PIPE_CAPACITY)
      let read: number
      try {
        read = copiedOutput(output.read, copyTo)
      } catch (error) {
        closeQuietly(output.write)
        throw error
      }
      let child: ChildProcess
      try {
        child = spawn(decompressor.command, decompressor.args, {
          stdio: [input._tag === "Descriptor" ? input.fd : "pipe", output.write, "pipe"]
        })
      } catch (error) {
        closeQuietly(read)
        throw error
      } finally {
        // The child has its own copy: ours would keep the pipe from ever reaching its end.
        closeQuietly(output.write)
      }
      // Listen before anything can happen: a missed "exit" would hang the reaper.
      const exited = new Promise<Exit>((resolve) => {
        child.once("error", (error) => resolve({ _tag: "SpawnFailed", error }))
        child.once("exit", (code, signal) => resolve({ _tag: "Exited", code, signal }))
      })
      // A child that dies mid-input makes our writes fail (EPIPE): its exit says why.
      child.stdin?.on("error", () => undefined)
      const stderr = child.stderr!
      const stderrText = cappedOutput([stderr], STDERR_LIMIT)
      const stderrDone = new Promise<void>((resolve) => {
        stderr.once("close", () => resolve())
        stderr.once("error", () => resolve())
      })
      const pulled = pipePull<E | InvalidLayer | FilesystemError>(
        read,
        pool,
        (error) => new InvalidLayer({ layer: blob.name, reason: `${decompressor.command}: ${reasonOf(error)}` })
      )
      return {
        child,
        output: pulled,
        exited,
        stderrDone,
        stderrText
      }
    },
    catch: (error) =>
      new FilesystemError({
        path: decompressor.command,
        reason: `cannot start ${decompressor.command}: ${reasonOf(error)}`
      })
  })

const reap = <E>(running: Running<E>) =>
  Effect.gen(function* () {
    const { child } = running
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    running.output.socket.destroy()
    child.stdin?.destroy()
    child.stderr?.destroy()
    yield* Effect.promise(() => running.exited)
  })

const checkExit = <E>(running: Running<E>, decompressor: Decompressor, layer: string, copied: boolean) =>
  Effect.gen(function* () {
    const exit = yield* Effect.promise(() => running.exited)
    if (exit._tag === "SpawnFailed") {
      return yield* new FilesystemError({
        path: decompressor.command,
        reason: `cannot run ${decompressor.command} (is it installed?): ${exit.error.message}`
      })
    }
    // Only the copying thread reads its output pipe, and it stops when the copy's reader is gone
    // while we still read: the layer is not at fault.
    if (copied && exit.signal === "SIGPIPE") {
      return yield* new FilesystemError({
        path: decompressor.command,
        reason: `${decompressor.command} was killed by SIGPIPE: the copy of its output (the DiffID hasher) stopped reading before the layer ended`
      })
    }
    if (exit.code !== 0) {
      yield* Effect.promise(() => running.stderrDone)
      const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`
      return yield* new InvalidLayer({ layer, reason: decompressor.describeFailure(how, running.stderrText()) })
    }
  })

/**
 * Bytes per read of the child's output: half the pipe. Every chunk costs the main thread a round
 * of effects (a pull, its meter, the byte reader's fill, the parser's step) and their garbage, so
 * fewer, bigger chunks mean fewer young-generation GCs: dev-80k, 1.56 GB of tar, 360 scavenges
 * (818 ms) with 64 KiB reads, 253 (564 ms) with 512 KiB.
 */
const READ_SIZE = 512 * 1024
/** Buffers a pull keeps for reuse: the byte reader holds two or three at a time, and up to QUEUED_CHUNKS wait. */
const POOLED_READS = 8

/**
 * The child's output as a pull, read into reused buffers (see ChunkPool) that the consumer gives
 * back with `release`. Its exit status is part of the output: a clean-looking but cut-short output
 * still fails. A fed child whose reader fails (a failed download) fails the output with the
 * reader's error. With `copyTo` (a pipe's write end, such as a hasher child's input), the kernel
 * also copies the output there as it passes (teeSplice), ending it when the output ends.
 */
export const childPull = <E>(
  decompressor: Decompressor,
  input: ChildInput<E>,
  blob: { readonly name: string },
  copyTo?: number
): Effect.Effect<PullSource<E | InvalidLayer | FilesystemError>, FilesystemError, Scope.Scope> =>
  Effect.gen(function* () {
    const pool = new ChunkPool(READ_SIZE, POOLED_READS)
    const running = yield* Effect.acquireRelease(start(decompressor, input, blob, pool, copyTo), reap)
    const { output } = running
    if (input._tag === "Fed") {
      yield* Effect.forkScoped(
        Effect.catchAll(feed(input.reader, running.child.stdin!), (error) => Effect.sync(() => output.fail(error)))
      )
    }
    const pull = Effect.flatMap(output.pull, (chunks) =>
      chunks === undefined
        ? Effect.as(checkExit(running, decompressor, blob.name, copyTo !== undefined), undefined)
        : Effect.succeed(chunks)
    )
    return { pull, release: pool.release }
  })
