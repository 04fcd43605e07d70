/**
 * A layer blob as a pull of uncompressed chunks (see byte-reader). gzip is inflated by an `igzip`
 * child where igzip (ISA-L, Debian's `isal`) is installed, and by node's zlib on the thread pool
 * otherwise or with `BANGER_GZIP=zlib`; zstd runs as a `zstd -dc` child, because Node 20's zlib
 * has none. igzip inflates about twice as fast as zlib (dev-80k's 1.37 GB layer: 2.6 s against
 * 5.7 s), and a large pull's time is mostly inflating. The two differ in one thing besides speed:
 * bytes after the last gzip member that do not start another member are ignored by igzip (as by
 * gzip(1)) and refused by zlib; the DiffID check covers the uncompressed bytes either way.
 *
 * Everything lives in the caller's scope: when it closes, the inflater is destroyed and a child
 * SIGKILLed if still running, and always reaped.
 */
import * as fsp from "node:fs/promises"
import * as zlib from "node:zlib"
import { Effect, type Scope } from "effect"
import { FilesystemError, InvalidLayer } from "../../domain/errors.js"
import type { LayerCompression } from "../../domain/oci.js"
import { onPath } from "../host/on-path.js"
import { type BlobReader, fileReader } from "./blob-reader.js"
import type { Pull, PullSource } from "./byte-reader.js"
import { ChunkPool } from "./chunk-pool.js"
import { type ChildInput, childPull, type Decompressor } from "./decompressor-child.js"
import { CHUNK_SIZE, feed } from "./feed.js"
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
  Effect.acquireRelease(Effect.tryPromise({ try: () => fsp.open(blob.path, "r"), catch: fileError(blob) }), (handle) =>
    Effect.promise(() => handle.close())
  )

/** Buffers an uncompressed layer's reads keep for reuse (the byte reader gives them back). */
const POOLED_READS = 4

/** An uncompressed layer's reads, into buffers the byte reader gives back. */
const chunksOf = <E>(reader: BlobReader<E>): PullSource<E> => {
  const pool = new ChunkPool(CHUNK_SIZE, POOLED_READS)
  const pull: Pull<E> = Effect.suspend(() => {
    const buffer = pool.take()
    return Effect.map(reader.read(buffer), (bytesRead) =>
      bytesRead === 0 ? undefined : [buffer.subarray(0, bytesRead)]
    )
  })
  return { pull, release: pool.release }
}

/** A pull whose chunks are its own (nothing to give back). */
const unpooled = <E>(pull: Pull<E>): PullSource<E> => ({ pull, release: () => undefined })

const withDetail = (what: string, detail: string) => (detail === "" ? what : `${what}: ${detail}`)

export const zstd: Decompressor = {
  command: "zstd",
  args: ["-d", "-c", "-q"],
  describeFailure: (exit, stderr) => withDetail(`zstd ${exit}`, stderr)
}

export const igzip: Decompressor = {
  command: "igzip",
  args: ["-d", "-c", "-q"],
  // igzip names its input "(null)" when it is stdin.
  describeFailure: (exit, stderr) =>
    withDetail(`gzip: corrupt or truncated (igzip ${exit})`, stderr.replace(/ ?\(null\)/g, ""))
}

/** gunzip on the thread pool, fed from `reader` (see feed). Exported for its tests. */
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
    // A failed read (a failed download) fails the output; a failed inflater reports on its output.
    yield* Effect.forkScoped(Effect.catchAll(feed(reader, inflater), (error) => Effect.sync(() => output.fail(error))))
    return output.pull
  })

/** Which gzip decoder a pull uses: igzip where it is on PATH, unless `BANGER_GZIP=zlib`. */
export const gzipDecoder = (): "igzip" | "zlib" =>
  process.env.BANGER_GZIP !== "zlib" && onPath(igzip.command) ? "igzip" : "zlib"

/** An uncompressed layer's chunks; `copied` when they were also copied to the pipe asked for. */
export interface UncompressedSource<E> extends PullSource<E> {
  readonly copied: boolean
}

const notCopied = <E>(source: PullSource<E>): UncompressedSource<E> => ({ ...source, copied: false })

type Decompressed<E> = Effect.Effect<
  UncompressedSource<E | InvalidLayer | FilesystemError>,
  FilesystemError,
  Scope.Scope
>

/**
 * A child decompressor or in-process gunzip over `input`, for a compressed layer; a child's output
 * also copied to `copyTo` when given.
 */
const decompress = <E>(
  compression: "gzip" | "zstd",
  input: ChildInput<E>,
  reader: () => BlobReader<E>,
  blob: CompressedBlob,
  copyTo: number | undefined
): Decompressed<E> => {
  const child = (decompressor: Decompressor) =>
    Effect.map(childPull(decompressor, input, blob, copyTo), (source) => ({ ...source, copied: copyTo !== undefined }))
  if (compression === "zstd") return child(zstd)
  if (gzipDecoder() === "igzip") return child(igzip)
  return Effect.map(gunzipPull(reader(), blob), (pull) => notCopied(unpooled(pull)))
}

/** A complete blob's open file, read by a child decompressor itself where there is one. */
const decompressFile = (
  blob: CompressedBlob,
  handle: fsp.FileHandle,
  copyTo: number | undefined
): Effect.Effect<UncompressedSource<InvalidLayer | FilesystemError>, FilesystemError, Scope.Scope> => {
  const reader = () => fileReader(handle, fileError(blob))
  if (blob.compression === "none") return Effect.succeed(notCopied(chunksOf(reader())))
  return decompress<FilesystemError>(blob.compression, { _tag: "Descriptor", fd: handle.fd }, reader, blob, copyTo)
}

/** A complete blob, opened before any decompressor exists, so a missing or unreadable one is reported as such. */
const fromFile = (
  blob: CompressedBlob,
  copyTo: number | undefined
): Effect.Effect<UncompressedSource<InvalidLayer | FilesystemError>, FilesystemError, Scope.Scope> =>
  Effect.flatMap(openBlob(blob), (handle) => decompressFile(blob, handle, copyTo))

/** What reading an uncompressed layer can fail with. */
export type UncompressedError = InvalidLayer | FilesystemError | DownloadError

/**
 * The layer's uncompressed chunks, in order, for as long as the scope lasts, and how to give
 * them back for reuse once read. A blob still downloading is read as it arrives; one whose bytes
 * are all written by the time its layer's turn comes is read by a child decompressor itself.
 * Where a child decompresses, its output is also copied to `copyTo` by the kernel (`copied`): the
 * DiffID hasher's pipe, so that the main thread does not write every byte a second time.
 */
export const openUncompressed = (
  blob: CompressedBlob,
  copyTo?: number
): Effect.Effect<UncompressedSource<UncompressedError>, UncompressedError, Scope.Scope> =>
  Effect.gen(function* () {
    const download = blob.download
    if (download === undefined) return yield* fromFile(blob, copyTo)
    const complete = yield* download.openIfComplete()
    if (complete !== undefined) return yield* decompressFile(blob, complete, copyTo)
    const reader = yield* download.reader()
    if (blob.compression === "none") return notCopied(chunksOf(reader))
    return yield* decompress(blob.compression, { _tag: "Fed", reader }, () => reader, blob, copyTo)
  })
