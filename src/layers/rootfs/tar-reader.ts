/**
 * A streaming tar reader: entries one at a time, file data in bounded chunks, nothing held whole.
 * Handles PAX (local and global, raw-byte values), GNU long names/links, and follows Go's
 * archive/tar (which writes nearly every layer) in treating links, symlinks, devices, fifos and
 * directories as header-only whatever their size field says.
 */
import { Effect } from "effect"
import { InvalidLayer } from "../../domain/errors.js"
import type { ByteReader } from "./byte-reader.js"
import { interpretPax, type PaxRecords, parsePaxInto } from "./pax.js"
import { BLOCK_SIZE, decodeHeader, type TarEntryType, TarFormatError } from "./tar-header.js"

export interface TarEntry {
  /** Name as written (after PAX / GNU long-name overrides), not yet normalized. */
  readonly name: string
  readonly type: TarEntryType
  readonly mode: number
  readonly uid: number
  readonly gid: number
  readonly mtime: number
  /** Bytes of data that follow; always 0 for header-only types. */
  readonly size: number
  readonly linkname: string
  readonly devMajor: number
  readonly devMinor: number
  readonly xattrs: ReadonlyArray<readonly [name: string, value: Uint8Array]>
}

export interface TarReader<E> {
  /** The next entry, or `undefined` at the end of the archive; skips unread data of the previous one. */
  readonly next: Effect.Effect<TarEntry | undefined, E | InvalidLayer>
  /** The current entry's next data chunk, or `undefined` once it is all read. */
  readonly readData: Effect.Effect<Uint8Array | undefined, E | InvalidLayer>
}

// PAX headers and GNU long names are buffered whole; real ones are a few hundred bytes.
const MAX_EXTENSION_SIZE = 4 * 1024 * 1024
const MAX_DATA_CHUNK = 1024 * 1024
const MAX_ID = 0xffff_ffff

const padding = (size: number) => (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE

const headerOnly = (type: TarEntryType) => type !== "file"

const utf8 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8")

const untilNul = (bytes: Uint8Array) => {
  const nul = bytes.indexOf(0)
  return nul === -1 ? bytes : bytes.subarray(0, nul)
}

export const makeTarReader = <E>(bytes: ByteReader<E | InvalidLayer>, layer: string): TarReader<E> => {
  const invalid = (reason: string) => new InvalidLayer({ layer, reason })
  const decode = <A>(parse: () => A) =>
    Effect.try({
      try: parse,
      catch: (error) => invalid(error instanceof TarFormatError ? error.message : `unreadable tar: ${String(error)}`)
    })

  const global: PaxRecords = new Map()
  let remaining = 0
  let pad = 0
  let ended = false

  const finishEntry = Effect.gen(function* () {
    if (remaining > 0) yield* bytes.skip(remaining)
    if (pad > 0) yield* bytes.skip(pad)
    remaining = 0
    pad = 0
  })

  const readExtension = (size: number, what: string) =>
    Effect.gen(function* () {
      if (size > MAX_EXTENSION_SIZE) return yield* Effect.fail(invalid(`${what} of ${size} bytes is too large`))
      const data = size === 0 ? new Uint8Array(0) : yield* bytes.readExact(size)
      if (data === undefined) return yield* Effect.fail(invalid(`truncated ${what}`))
      if (padding(size) > 0) yield* bytes.skip(padding(size))
      return data
    })

  const next = Effect.gen(function* () {
    yield* finishEntry
    if (ended) return undefined
    const local: PaxRecords = new Map(global)
    let longName: Uint8Array | undefined
    let longLink: Uint8Array | undefined
    let pending = false
    while (true) {
      const block = yield* bytes.readExact(BLOCK_SIZE)
      const header = block === undefined ? undefined : yield* decode(() => decodeHeader(block))
      if (header === undefined) {
        if (pending) return yield* Effect.fail(invalid("archive ends right after an extended header"))
        // End of archive: a zero block, or (leniently, like Go) a clean end at a header boundary.
        ended = true
        return undefined
      }
      switch (header.kind) {
        case "pax": {
          const data = yield* readExtension(header.size, "PAX header")
          yield* decode(() => parsePaxInto(data, local))
          pending = true
          continue
        }
        case "pax-global": {
          const data = yield* readExtension(header.size, "PAX global header")
          yield* decode(() => parsePaxInto(data, global))
          yield* decode(() => parsePaxInto(data, local))
          continue
        }
        case "gnu-long-name":
          longName = untilNul(yield* readExtension(header.size, "GNU long name"))
          pending = true
          continue
        case "gnu-long-link":
          longLink = untilNul(yield* readExtension(header.size, "GNU long link name"))
          pending = true
          continue
      }
      const type = header.kind
      const pax = yield* decode(() => interpretPax(local))
      const uid = pax.uid ?? header.uid
      const gid = pax.gid ?? header.gid
      if (uid > MAX_ID || gid > MAX_ID) return yield* Effect.fail(invalid("uid or gid out of range"))
      const size = headerOnly(type) ? 0 : (pax.size ?? header.size)
      remaining = size
      pad = padding(size)
      return {
        name: pax.path ?? utf8(longName ?? header.name),
        type,
        mode: header.mode,
        uid,
        gid,
        mtime: pax.mtime ?? header.mtime,
        size,
        linkname: pax.linkpath ?? utf8(longLink ?? header.linkname),
        devMajor: header.devMajor,
        devMinor: header.devMinor,
        xattrs: pax.xattrs
      } satisfies TarEntry
    }
  })

  const readData = Effect.suspend(() => {
    if (remaining === 0) return Effect.succeed(undefined)
    return Effect.map(bytes.readSome(Math.min(remaining, MAX_DATA_CHUNK)), (chunk) => {
      remaining -= chunk.length
      return chunk
    })
  })

  return { next, readData }
}
