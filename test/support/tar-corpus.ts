/**
 * Reads a whole archive through banger's tar reader, as a layer would be read: every entry, its
 * data as the pieces written where they belong (sparse holes as gaps), or the typed failure.
 */
import * as crypto from "node:crypto"
import { Effect } from "effect"
import { InvalidLayer } from "../../src/domain/errors.js"
import { makeByteReader } from "../../src/layers/rootfs/byte-reader.js"
import { makeTarReader, type TarEntry } from "../../src/layers/rootfs/tar-reader.js"

export interface ReadEntry {
  readonly entry: TarEntry
  /** Data bytes at their offsets in the file; absent when the data was skipped unread. */
  readonly pieces: ReadonlyArray<readonly [offset: number, bytes: Buffer]> | undefined
  /** Bytes read plus holes: the file's length as the reader hands it out. */
  readonly length: number
}

export interface ReadResult {
  readonly entries: ReadonlyArray<ReadEntry>
  readonly error: InvalidLayer | undefined
}

/** The reader's message for a stream that ends mid-entry (the layer source says the same). */
export const TRUNCATED = "truncated"

/**
 * `readData`: read every entry's data (else skip it unread, which the reader must then step over).
 * `chunk`: hand the bytes over this many at a time, so that every boundary is crossed somewhere.
 */
export const readArchive = (
  archive: Uint8Array,
  options: { readonly readData: boolean; readonly chunk?: number }
): Effect.Effect<ReadResult> =>
  Effect.gen(function* () {
    const chunk = options.chunk ?? archive.length
    let offset = 0
    // Each piece a copy, scribbled over once the byte reader gives it back (as a reused read
    // buffer is read into again): a reader that kept a view past its next fill reads garbage.
    const pull = Effect.sync(() => {
      if (offset >= archive.length) return undefined
      const piece = Uint8Array.from(archive.subarray(offset, offset + chunk))
      offset += chunk
      return [piece]
    })
    const scribble = (piece: Uint8Array) => piece.fill(0xaa)
    const bytes = makeByteReader(pull, () => new InvalidLayer({ layer: "corpus", reason: TRUNCATED }), scribble)
    const reader = makeTarReader(bytes, "corpus")
    const entries: Array<ReadEntry> = []
    const run = Effect.gen(function* () {
      while (true) {
        const entry = yield* reader.next
        if (entry === undefined) return
        if (!options.readData) {
          entries.push({ entry, pieces: undefined, length: 0 })
          continue
        }
        // Counted before its data is read, as Go counts a header once Next returns it.
        const pieces: Array<readonly [number, Buffer]> = []
        const read = { entry, pieces, length: 0 }
        entries.push(read)
        while (true) {
          const data = yield* reader.readData
          if (data === undefined) break
          if (typeof data === "number") {
            read.length += data
            continue
          }
          pieces.push([read.length, Buffer.from(data)])
          read.length += data.length
        }
      }
    })
    const error = yield* run.pipe(
      Effect.as(undefined),
      Effect.catchAll((failure) => Effect.succeed(failure))
    )
    return { entries, error }
  })

/** The whole contents, holes as zeros: for files small enough to hold. */
export const contentsOf = (read: ReadEntry): Buffer => {
  const whole = Buffer.alloc(read.length)
  for (const [at, bytes] of read.pieces ?? []) bytes.copy(whole, at)
  return whole
}

export const md5 = (bytes: Uint8Array) => crypto.createHash("md5").update(bytes).digest("hex")
