/**
 * A layer blob as a stream of uncompressed bytes. gzip runs in-process (node zlib); zstd runs as a
 * `zstd -dc` child, because Node 20's zlib has none. The child lives in the stream's scope: when
 * the stream ends, fails or is interrupted it is SIGKILLed if still running and always reaped.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import type { Readable } from "node:stream"
import * as zlib from "node:zlib"
import { NodeStream } from "@effect/platform-node"
import { Effect, Stream } from "effect"
import { FilesystemError, InvalidLayer } from "../../domain/errors.js"
import type { LayerCompression } from "../../domain/oci.js"
import type { DownloadError, GrowingBlob } from "./growing-blob.js"

export interface CompressedBlob {
  readonly path: string
  readonly compression: LayerCompression
  /** Names the layer in errors. */
  readonly name: string
  /** Set while the blob is still downloading: then the path comes from `download.done`. */
  readonly download?: GrowingBlob | undefined
}

const reasonOf = (error: unknown) => (error instanceof Error ? error.message : String(error))

const fileError = (blob: CompressedBlob) => (error: unknown) =>
  new FilesystemError({ path: blob.path, reason: reasonOf(error) })

const openBlob = (blob: CompressedBlob) =>
  Effect.acquireRelease(Effect.tryPromise({ try: () => fs.open(blob.path, "r"), catch: fileError(blob) }), (handle) =>
    Effect.promise(() => handle.close())
  )

const readFile = (handle: fs.FileHandle, blob: CompressedBlob) =>
  NodeStream.fromReadable<FilesystemError, Uint8Array>(
    () => handle.createReadStream({ highWaterMark: 256 * 1024, autoClose: false }),
    fileError(blob)
  )

type ZstdExit =
  | { readonly _tag: "Exited"; readonly code: number | null; readonly signal: NodeJS.Signals | null }
  | { readonly _tag: "SpawnFailed"; readonly error: Error }

interface ZstdProcess {
  readonly child: ChildProcess
  readonly stdout: Readable
  readonly stderr: Readable
  readonly exited: Promise<ZstdExit>
  readonly stderrDone: Promise<void>
  readonly stderrText: () => string
}

const STDERR_LIMIT = 8 * 1024

// zstd reads the blob from our descriptor as its stdin: no path on its command line to misparse.
const spawnZstd = (input: fs.FileHandle) =>
  Effect.sync((): ZstdProcess => {
    const child = spawn("zstd", ["-d", "-c", "-q"], { stdio: [input.fd, "pipe", "pipe"] })
    // Listen before anything can happen: a missed "exit" would hang the reaper.
    const exited = new Promise<ZstdExit>((resolve) => {
      child.once("error", (error) => resolve({ _tag: "SpawnFailed", error }))
      child.once("exit", (code, signal) => resolve({ _tag: "Exited", code, signal }))
    })
    const chunks: Array<Buffer> = []
    let kept = 0
    // Both are pipes by construction.
    const stdout = child.stdout!
    const stderr = child.stderr!
    stderr.on("data", (chunk: Buffer) => {
      if (kept < STDERR_LIMIT) {
        chunks.push(chunk)
        kept += chunk.length
      }
    })
    const stderrDone = new Promise<void>((resolve) => {
      stderr.once("close", () => resolve())
      stderr.once("error", () => resolve())
    })
    return {
      child,
      stdout,
      stderr,
      exited,
      stderrDone,
      stderrText: () => Buffer.concat(chunks).toString("utf8").trim()
    }
  })

const reap = (zstd: ZstdProcess) =>
  Effect.gen(function* () {
    if (zstd.child.exitCode === null && zstd.child.signalCode === null) zstd.child.kill("SIGKILL")
    zstd.stdout.destroy()
    zstd.stderr.destroy()
    yield* Effect.promise(() => zstd.exited)
  })

const checkExit = (zstd: ZstdProcess, blob: CompressedBlob) =>
  Effect.gen(function* () {
    const exit = yield* Effect.promise(() => zstd.exited)
    if (exit._tag === "SpawnFailed") {
      return yield* Effect.fail(
        new FilesystemError({ path: "zstd", reason: `cannot run zstd (is it installed?): ${exit.error.message}` })
      )
    }
    if (exit.code !== 0) {
      yield* Effect.promise(() => zstd.stderrDone)
      const detail = zstd.stderrText()
      return yield* Effect.fail(
        new InvalidLayer({
          layer: blob.name,
          reason: `zstd ${exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`}${detail ? `: ${detail}` : ""}`
        })
      )
    }
  })

const zstdStream = (input: fs.FileHandle, blob: CompressedBlob) =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      const zstd = yield* Effect.acquireRelease(spawnZstd(input), reap)
      const output = NodeStream.fromReadable<InvalidLayer, Uint8Array>(
        () => zstd.stdout,
        (error) => new InvalidLayer({ layer: blob.name, reason: `zstd: ${reasonOf(error)}` })
      )
      // The exit status is part of the stream: a clean-looking but cut-short output must still fail.
      return Stream.concat(output, Stream.drain(Stream.fromEffect(checkExit(zstd, blob))))
    })
  )

const gunzip = <E>(compressed: Stream.Stream<Uint8Array, E>, blob: { readonly name: string }) =>
  compressed.pipe(
    NodeStream.pipeThroughDuplex(
      // 256 KiB rather than zlib's 16 KiB: a sixteenth of the thread-pool jobs and stream steps.
      () => zlib.createGunzip({ chunkSize: 256 * 1024 }),
      (error) => new InvalidLayer({ layer: blob.name, reason: `gzip: ${reasonOf(error)}` })
    )
  )

// The blob is opened before any decompressor exists, so a missing or unreadable blob is reported as
// such rather than as the decompressor's complaint about empty input.
const fromFile = (blob: CompressedBlob): Stream.Stream<Uint8Array, InvalidLayer | FilesystemError> =>
  Stream.unwrapScoped(
    Effect.map(openBlob(blob), (handle) => {
      switch (blob.compression) {
        case "none":
          return readFile(handle, blob)
        case "gzip":
          return gunzip(readFile(handle, blob), blob)
        case "zstd":
          return zstdStream(handle, blob)
      }
    })
  )

/**
 * A blob still downloading is read as it arrives, except with zstd, whose child reads our
 * descriptor itself and would take the end of what is written so far for the end of the blob.
 */
export const uncompressedStream = (
  blob: CompressedBlob
): Stream.Stream<Uint8Array, InvalidLayer | FilesystemError | DownloadError> => {
  const download = blob.download
  if (download === undefined) return fromFile(blob)
  switch (blob.compression) {
    case "none":
      return download.stream()
    case "gzip":
      return gunzip(download.stream(), blob)
    case "zstd":
      return Stream.unwrap(Effect.map(download.done, (path) => fromFile({ ...blob, path, download: undefined })))
  }
}
