import { statfsSync, writeSync } from "node:fs"
import type { FileHandle } from "node:fs/promises"
import * as fs from "node:fs/promises"
import { Effect } from "effect"
import { DigestMismatch, FilesystemError, type RegistryError } from "../../domain/errors.js"
import type { Descriptor } from "../../domain/oci.js"
import { formatSize } from "../../domain/size.js"
import { digestHasher, fileDigest } from "../host/stream-hasher.js"
import type { OnChunk } from "../registry/blob-stream.js"
import { type DigestAlgorithm, newHasher } from "../registry/digest.js"

/** Progress is reported at most this often (plus once at the end): callers render it, not log it. */
const progressStep = 256 * 1024

/**
 * Blobs from this size on are hashed once written, by an openssl child reading the file
 * (`fileDigest`), where openssl is installed: the main thread, which also parses and writes the
 * layers applied meanwhile, then only writes their bytes (SHA-256 of dev-80k's 694 MB of blobs
 * was ~0.5 s of it). The verdict comes a moment after the last byte (~0.4 s for 566 MB); readers
 * of a growing blob already take its bytes before it (see GrowingBlob). Smaller blobs are hashed as
 * they arrive: a child costs more than their hash.
 */
export const HASH_AFTER_BYTES = 16 * 1024 * 1024

export const fsError = (path: string) => (error: unknown) =>
  new FilesystemError({ path, reason: error instanceof Error ? error.message : String(error) })

/**
 * Writes all of `chunk`: the failure, if any. Synchronous: a chunk lands in the page cache in
 * microseconds, far less than a round trip through libuv's thread pool per chunk.
 */
const writeAll = (handle: FileHandle, chunk: Uint8Array): unknown => {
  try {
    let offset = 0
    while (offset < chunk.length) offset += writeSync(handle.fd, chunk, offset, chunk.length - offset)
    return undefined
  } catch (error) {
    return error ?? new Error("write failed")
  }
}

/** A write failure in words; a full disk says how far the blob got and what space is left. */
const writeFailure = (path: string, error: unknown, descriptor: Descriptor, written: number): FilesystemError => {
  if ((error as NodeJS.ErrnoException).code !== "ENOSPC") return fsError(path)(error)
  let free = "no"
  try {
    const stats = statfsSync(path)
    free = formatSize(stats.bavail * stats.bsize)
  } catch {
    // The figure is a courtesy; the failure stands without it.
  }
  return new FilesystemError({
    path,
    reason: `the filesystem is full: blob ${descriptor.digest} stopped at ${formatSize(written)} of ${formatSize(descriptor.size)} (${free} free)`
  })
}

/** A temp file that is closed and removed when its scope ends, whatever happened. */
const tempFile = (path: string) =>
  Effect.acquireRelease(Effect.tryPromise({ try: () => fs.open(path, "wx", 0o644), catch: fsError(path) }), (handle) =>
    Effect.promise(async () => {
      await handle.close().catch(() => undefined)
      // After a successful rename this finds nothing, which is the point.
      await fs.rm(path, { force: true }).catch(() => undefined)
    })
  )

/**
 * Reads the blob (`read` hands its chunks to a callback, see RegistryClient.readBlob) into
 * `tempPath` while hashing and counting, then renames it to `finalPath` only if size and digest
 * match the descriptor. Stops reading the moment more bytes arrive than the descriptor declares.
 * Scoped: an error or interruption leaves no temp file behind.
 */
export const downloadVerified = Effect.fn("blobCache.download")(function* (options: {
  readonly read: <E>(onChunk: OnChunk<E>) => Effect.Effect<void, RegistryError | E>
  readonly descriptor: Descriptor
  readonly algorithm: DigestAlgorithm
  readonly tempPath: string
  readonly finalPath: string
  readonly onProgress: (bytesDone: number) => Effect.Effect<void>
  readonly onTempFile?: ((path: string) => Effect.Effect<void>) | undefined
}) {
  const { descriptor, tempPath, finalPath, onProgress } = options
  const handle = yield* tempFile(tempPath)
  if (options.onTempFile) yield* options.onTempFile(tempPath)
  const hashAfter = descriptor.size >= HASH_AFTER_BYTES && digestHasher() === "openssl"
  const hasher = hashAfter ? undefined : newHasher(options.algorithm)
  let received = 0
  let reported = 0
  // Not Effect.gen: with a generator per chunk, every chunk outlived the young-generation GCs
  // (measured: a download's ArrayBuffers only ever fell at full GCs).
  yield* options.read((chunk) =>
    Effect.suspend((): Effect.Effect<void, DigestMismatch | FilesystemError> => {
      received += chunk.length
      if (received > descriptor.size) {
        return Effect.fail(
          new DigestMismatch({
            expected: descriptor.digest,
            actual: "",
            reason: `the registry sent more than the ${descriptor.size} bytes the manifest declares`
          })
        )
      }
      hasher?.update(chunk)
      const failed = writeAll(handle, chunk)
      if (failed !== undefined) return Effect.fail(writeFailure(tempPath, failed, descriptor, received - chunk.length))
      if (received - reported < progressStep && received !== descriptor.size) return Effect.void
      reported = received
      return onProgress(received)
    })
  )
  if (received !== descriptor.size) {
    return yield* new DigestMismatch({
      expected: descriptor.digest,
      actual: "",
      reason: `the registry sent ${received} of the ${descriptor.size} bytes the manifest declares for this blob`
    })
  }
  const hex = hasher === undefined ? yield* fileDigest(options.algorithm, tempPath) : hasher.digest("hex")
  const actual = `${options.algorithm}:${hex}`
  if (actual !== descriptor.digest) {
    return yield* new DigestMismatch({ expected: descriptor.digest, actual, reason: "downloaded blob is corrupt" })
  }
  // Durable before it becomes visible: a crash must not leave a named-but-empty blob.
  yield* Effect.tryPromise({ try: () => handle.sync(), catch: fsError(tempPath) })
  yield* Effect.tryPromise({ try: () => fs.rename(tempPath, finalPath), catch: fsError(finalPath) })
  return finalPath
})
