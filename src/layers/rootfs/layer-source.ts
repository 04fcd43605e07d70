/**
 * Opens a layer for reading: decompresses it, hashes every uncompressed byte for the DiffID check
 * (unless an earlier pull checked it) and enforces the decompression bound as the bytes arrive,
 * so a gzip bomb fails after `limit` bytes instead of filling the disk.
 */
import { Effect, type Scope } from "effect"
import { DigestMismatch, type FilesystemError, InvalidLayer } from "../../domain/errors.js"
import { streamHasher } from "../host/stream-hasher.js"
import { parseDigest } from "../registry/digest.js"
import { type ByteReader, makeByteReader } from "./byte-reader.js"
import { openUncompressed } from "./decompress.js"
import type { DownloadError } from "./growing-blob.js"
import type { LayerFile } from "./rootfs-builder.js"

/** What reading a layer's bytes can fail with. */
export type LayerReadError = InvalidLayer | FilesystemError | DownloadError

export interface LayerSource {
  readonly bytes: ByteReader<LayerReadError>
  /** Drains what the parser left unread, then compares the hash with the DiffID. */
  readonly verify: Effect.Effect<void, DigestMismatch | LayerReadError>
}

/** A DiffID has a digest's strict form. */
const parseDiffId = (layer: LayerFile) => {
  const parsed = parseDigest(layer.diffId)
  return parsed === undefined
    ? Effect.fail(new InvalidLayer({ layer: layer.digest, reason: `unsupported DiffID "${layer.diffId}"` }))
    : Effect.succeed(parsed.algorithm)
}

export const openLayer = (layer: LayerFile, limit: number): Effect.Effect<LayerSource, LayerReadError, Scope.Scope> =>
  Effect.gen(function* () {
    const algorithm = yield* parseDiffId(layer)
    const hasher = layer.diffIdVerified === true ? undefined : yield* streamHasher(algorithm)
    let total = 0
    const { pull, release, copied } = yield* openUncompressed(
      { path: layer.path, compression: layer.compression, name: layer.digest, download: layer.download },
      hasher?.pipe
    )
    /** Counts and hashes `chunks` from `from` on, waiting for the hasher whenever it falls behind. */
    const meter = (
      chunks: ReadonlyArray<Uint8Array>,
      from: number
    ): Effect.Effect<void, InvalidLayer | FilesystemError> => {
      for (let index = from; index < chunks.length; index++) {
        const chunk = chunks[index]!
        total += chunk.length
        if (total > limit) {
          return Effect.fail(
            new InvalidLayer({ layer: layer.digest, reason: `uncompressed size exceeds the limit of ${limit} bytes` })
          )
        }
        if (hasher !== undefined && !copied && !hasher.update(chunk)) {
          return Effect.zipRight(
            hasher.caughtUp,
            Effect.suspend(() => meter(chunks, index + 1))
          )
        }
      }
      return Effect.void
    }
    const metered = Effect.tap(pull, (chunks) => (chunks === undefined ? Effect.void : meter(chunks, 0)))
    const bytes = makeByteReader<LayerReadError>(
      metered,
      () => new InvalidLayer({ layer: layer.digest, reason: "unexpected end of data (truncated layer)" }),
      release
    )
    const verify = Effect.gen(function* () {
      yield* bytes.drain
      if (hasher === undefined) return
      const actual = `${algorithm}:${yield* hasher.digest}`
      if (actual !== layer.diffId) {
        return yield* Effect.fail(
          new DigestMismatch({
            expected: layer.diffId,
            actual,
            reason: `uncompressed content of layer ${layer.digest} does not match its DiffID`
          })
        )
      }
    })
    return { bytes, verify }
  })
