/**
 * A layer blob as a pull of uncompressed chunks (see byte-reader). gzip runs in-process (node
 * zlib); zstd runs as a `zstd -dc` child, because Node 20's zlib has none. Everything lives in the
 * caller's scope: when it closes, the inflater is destroyed and the zstd child SIGKILLed if still
 * running, and always reaped.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import type { Readable } from "node:stream"
import * as zlib from "node:zlib"
import { Effect, type Scope } from "effect"
import { FilesystemError, InvalidLayer } from "../../domain/errors.js"
import type { LayerCompression } from "../../domain/oci.js"
import { type BlobReader, fileReader } from "./blob-reader.js"
import type { Pull } from "./byte-reader.js"
import type { DownloadError, GrowingBlob } from "./growing-blob.js"
import { readablePull } from "./readable-pull.js"

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

/** Input and output chunks of a gzip layer, and the reads of an uncompressed one. */
const CHUNK_SIZE = 256 * 1024

/**
 * Fresh buffers: the tar parser may keep what it is given across pulls (an extended header split
 * over two chunks), so an uncompressed layer's reads cannot share one.
 */
const chunksOf = <E>(reader: BlobReader<E>): Pull<E> =>
  Effect.suspend(() => {
    const buffer = Buffer.allocUnsafe(CHUNK_SIZE)
    return Effect.map(reader.read(buffer), (bytesRead) =>
      bytesRead === 0 ? undefined : [buffer.subarray(0, bytesRead)]
    )
  })

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

const zstdPull = (input: fs.FileHandle, blob: CompressedBlob) =>
  Effect.map(Effect.acquireRelease(spawnZstd(input), reap), (zstd): Pull<InvalidLayer | FilesystemError> => {
    const output = readablePull(
      zstd.stdout,
      (error) => new InvalidLayer({ layer: blob.name, reason: `zstd: ${reasonOf(error)}` })
    )
    // The exit status is part of the output: a clean-looking but cut-short output must still fail.
    return Effect.flatMap(output.pull, (chunks) =>
      chunks === undefined ? Effect.as(checkExit(zstd, blob), undefined) : Effect.succeed(chunks)
    )
  })

/**
 * Hands `chunk` to the inflater now; the effect resolves once the inflater is done with it (it has
 * decompressed all of it): false if it failed.
 */
const submit = (inflater: zlib.Gunzip, chunk: Uint8Array) =>
  Effect.sync(() => {
    let outcome: boolean | undefined
    let waiting: ((ok: boolean) => void) | undefined
    inflater.write(chunk, (error) => {
      outcome = error == null
      waiting?.(outcome)
    })
    return Effect.async<boolean>((resume) => {
      if (outcome !== undefined) return resume(Effect.succeed(outcome))
      waiting = (ok) => resume(Effect.succeed(ok))
    })
  })

/** Compressed chunks handed to the inflater at a time (see gunzipPull). */
const INPUTS_IN_FLIGHT = 2

/**
 * gunzip fed compressed chunks from two reused buffers, a new one handed over once the inflater
 * has consumed the one before the last, so the blob is read no further ahead than the output is
 * taken. Two, not one: the inflater goes straight on to the next chunk on the thread pool instead of
 * idling until the main thread has read and handed over more (bench image, warm pull: flatten
 * 1.35 -> 1.15 s).
 * (NodeStream.pipeThroughDuplex wrote whatever its input yielded without waiting: zlib had tens of
 * MiB of a blob queued ahead of it.) Exported for its tests.
 */
export const gunzipPull = <E>(reader: BlobReader<E>, blob: { readonly name: string }) =>
  Effect.gen(function* () {
    const inflater = yield* Effect.acquireRelease(
      // 256 KiB rather than zlib's 16 KiB: a sixteenth of the thread-pool jobs and pulls.
      Effect.sync(() => zlib.createGunzip({ chunkSize: CHUNK_SIZE })),
      (inflater) => Effect.sync(() => inflater.destroy())
    )
    const output = readablePull<E | InvalidLayer>(
      inflater,
      (error) => new InvalidLayer({ layer: blob.name, reason: `gzip: ${reasonOf(error)}` })
    )
    const inputs = Array.from({ length: INPUTS_IN_FLIGHT }, () => Buffer.allocUnsafe(CHUNK_SIZE))
    const feed = Effect.gen(function* () {
      const consumed: Array<Effect.Effect<boolean>> = []
      for (let next = 0; ; next = (next + 1) % inputs.length) {
        // A failed inflater reports why on its output side.
        if (consumed.length === inputs.length && !(yield* consumed.shift()!)) return
        const input = inputs[next]!
        const bytesRead = yield* reader.read(input)
        if (bytesRead === 0) {
          inflater.end()
          return
        }
        consumed.push(yield* submit(inflater, input.subarray(0, bytesRead)))
      }
    })
    // A failed read (a failed download) fails the output.
    yield* Effect.forkScoped(Effect.catchAll(feed, (error) => Effect.sync(() => output.fail(error))))
    return output.pull
  })

/** A complete blob, opened before any decompressor exists, so a missing or unreadable one is reported as such. */
const fromFile = (
  blob: CompressedBlob
): Effect.Effect<Pull<InvalidLayer | FilesystemError>, FilesystemError, Scope.Scope> =>
  Effect.flatMap(openBlob(blob), (handle) => {
    switch (blob.compression) {
      case "none":
        return Effect.succeed(chunksOf(fileReader(handle, fileError(blob))))
      case "gzip":
        return gunzipPull(fileReader(handle, fileError(blob)), blob)
      case "zstd":
        return zstdPull(handle, blob)
    }
  })

/** What reading an uncompressed layer can fail with. */
export type UncompressedError = InvalidLayer | FilesystemError | DownloadError

/**
 * The layer's uncompressed chunks, in order, for as long as the scope lasts. A blob still
 * downloading is read as it arrives, except with zstd, whose child reads our descriptor itself and
 * would take the end of what is written so far for the end of the blob.
 */
export const openUncompressed = (
  blob: CompressedBlob
): Effect.Effect<Pull<UncompressedError>, UncompressedError, Scope.Scope> => {
  const download = blob.download
  if (download === undefined) return fromFile(blob)
  switch (blob.compression) {
    case "none":
      return Effect.map(download.reader(), chunksOf)
    case "gzip":
      return Effect.flatMap(download.reader(), (reader) => gunzipPull(reader, blob))
    case "zstd":
      return Effect.flatMap(download.done, (path) => fromFile({ ...blob, path, download: undefined }))
  }
}
