/**
 * A streaming tar reader: entries one at a time, file data in bounded chunks, nothing held whole.
 * Handles PAX (raw-byte values), GNU long names/links and GNU sparse files (their holes handed out
 * as lengths, never as zeros), and reads as Go's archive/tar does (Go writes nearly every layer,
 * and containerd reads through it): links, symlinks, devices, fifos and directories are
 * header-only whatever their size field says, global PAX records change no entry, and the edge
 * cases follow Go's own test archives (test/corpora/go-archive-tar).
 */
import { Effect } from "effect"
import { InvalidLayer } from "../../domain/errors.js"
import type { ByteReader } from "./byte-reader.js"
import { interpretPax, NO_OVERRIDES, type PaxOverrides, type PaxRecords, parsePaxInto } from "./pax.js"
import {
  BLOCK_SIZE,
  decodeHeader,
  type RawHeader,
  readSparseExtension,
  type SparseMap,
  type TarEntryType,
  TarFormatError
} from "./tar-header.js"

export interface TarEntry {
  /** Name as written (after PAX / GNU long-name overrides), not yet normalized. */
  readonly name: string
  readonly type: TarEntryType
  readonly mode: number
  readonly uid: number
  readonly gid: number
  readonly mtime: number
  /** Bytes of data the file holds (a sparse file's real size); always 0 for header-only types. */
  readonly size: number
  readonly linkname: string
  readonly devMajor: number
  readonly devMinor: number
  readonly xattrs: ReadonlyArray<readonly [name: string, value: Uint8Array]>
  /**
   * For a sparse file, its data fragments (`[offset, length, ...]`, sorted, not overlapping, inside
   * `size`): `readData` then yields the fragments' bytes and, for each hole, its length as a number.
   */
  readonly sparse: SparseMap | undefined
}

/** What a data read yields: bytes, a hole of that many bytes (sparse files only), or the end. */
export type DataChunk = Uint8Array | number | undefined

export interface TarReader<E> {
  /** The next entry, or `undefined` at the end of the archive; skips unread data of the previous one. */
  readonly next: Effect.Effect<TarEntry | undefined, E | InvalidLayer>
  /** The current entry's next data chunk (or a sparse file's next hole), `undefined` once it is all read. */
  readonly readData: Effect.Effect<DataChunk, E | InvalidLayer>
  /**
   * `next` on the buffered bytes only: `NEED_MORE` when they run out (then `fill` and call again,
   * which resumes where this call stopped). Failures are thrown as `TarFailure`.
   */
  readonly nextSync: () => TarEntry | undefined | NeedMore
  /** `readData` on the buffered bytes only, as `nextSync`. */
  readonly readDataSync: () => DataChunk | NeedMore
  /** Pulls more bytes for the sync calls. */
  readonly fill: Effect.Effect<void, E | InvalidLayer>
}

/** What a sync read returns when the buffered bytes do not reach far enough. */
export const NEED_MORE: unique symbol = Symbol("NEED_MORE")
export type NeedMore = typeof NEED_MORE

/** Carries an expected failure out of synchronous parsing code to the effect that runs it. */
export class TarFailure<E> {
  constructor(readonly error: E) {}
}

// PAX headers, GNU long names and sparse maps are buffered whole; real ones are a few hundred
// bytes. Go refuses more than 1 MiB (ErrFieldTooLong), and so does banger.
const MAX_EXTENSION_SIZE = 1024 * 1024
const MAX_DATA_CHUNK = 1024 * 1024
const MAX_ID = 0xffff_ffff

const padding = (size: number) => (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE

const headerOnly = (type: TarEntryType) => type !== "file"

const typeOf = (header: RawHeader): TarEntryType =>
  header.kind === "gnu-sparse" ? "file" : header.kind === "gnu-dumpdir" ? "directory" : (header.kind as TarEntryType)

// A million fragments: far beyond real sparse files, and within what banger's extent trees hold.
const MAX_SPARSE_NUMBERS = 2 * 1024 * 1024

/**
 * Go's validateSparseEntries (sorted, not overlapping, inside the real size), plus: the fragments
 * add up to the data there is. Go finds that out only while the data is read; checking first
 * means no file is half written when it fails.
 */
const sparseMapProblem = (map: SparseMap, realSize: number, physical: number): string | undefined => {
  let end = 0
  let total = 0
  for (let i = 0; i < map.length; i += 2) {
    const offset = map[i]!
    const length = map[i + 1]!
    if (offset < end) return "GNU sparse map fragments overlap or are out of order"
    end = offset + length
    if (end > realSize) return "GNU sparse map reaches past the file's size"
    total += length
  }
  return total === physical ? undefined : `GNU sparse map covers ${total} bytes, the entry holds ${physical}`
}

/**
 * Feeds one block of a PAX 1.0 sparse map (a count, then offset and length pairs, each a decimal
 * number ending in a newline, as Go's readGNUSparseMap1x0 reads it); true once the map is whole.
 */
const readMapText = (
  sparse: { readonly map: SparseMap; partial: string; count: number | undefined },
  block: Uint8Array
): boolean => {
  const tokens = (sparse.partial + Buffer.from(block).toString("latin1")).split("\n")
  sparse.partial = tokens.pop()!
  for (const token of tokens) {
    if (!/^[0-9]+$/.test(token)) throw new TarFormatError("malformed GNU sparse 1.0 map")
    const value = Number(token)
    if (!Number.isSafeInteger(value)) throw new TarFormatError("GNU sparse 1.0 map number out of range")
    if (sparse.count === undefined) {
      if (value > MAX_SPARSE_NUMBERS / 2) throw new TarFormatError("GNU sparse map is too large")
      sparse.count = value
    } else sparse.map.push(value)
    if (sparse.map.length === 2 * sparse.count) return true
  }
  // Numbers may carry any number of leading zeros (Go reads them), but not without bound.
  if (sparse.partial.length > MAX_EXTENSION_SIZE) throw new TarFormatError("malformed GNU sparse 1.0 map")
  return false
}

/**
 * `Buffer#toString("utf8")` of a plain view without wrapping it in a Buffer first (its `utf8Slice`,
 * which toString calls, takes any Uint8Array): two names per entry, so a Buffer each added up.
 */
const utf8Slice = (
  Buffer.prototype as unknown as { utf8Slice: (this: Uint8Array, start: number, end: number) => string }
).utf8Slice
const utf8 = (bytes: Uint8Array) => (bytes.length === 0 ? "" : utf8Slice.call(bytes, 0, bytes.length))

const untilNul = (bytes: Uint8Array) => {
  const nul = bytes.indexOf(0)
  return nul === -1 ? bytes : bytes.subarray(0, nul)
}

type ExtensionKind = "pax" | "pax-global" | "gnu-long-name" | "gnu-long-link"

const EXTENSION_NAMES: Record<ExtensionKind, string> = {
  pax: "PAX header",
  "pax-global": "PAX global header",
  "gnu-long-name": "GNU long name",
  "gnu-long-link": "GNU long link name"
}

/** An extended header whose data is still being read. */
interface Extension {
  readonly kind: ExtensionKind
  readonly size: number
  data: Uint8Array | undefined
  padLeft: number
}

/** The headers read so far for the entry being assembled (extensions come before its own header). */
interface Assembly {
  /** The entry's PAX records; made when a PAX header comes (most entries have none). */
  local: PaxRecords | undefined
  longName: Uint8Array | undefined
  longLink: Uint8Array | undefined
  extension: Extension | undefined
  /** A sparse entry whose map is still being read from the blocks after its header. */
  sparse: SparseAssembly | undefined
  /** One zero block has been read: the end, unless something other than a second one follows. */
  zeroSeen: boolean
}

/** A sparse entry's header, read; its map continues in extension blocks (old GNU) or its data (PAX 1.0). */
interface SparseAssembly {
  readonly header: RawHeader
  readonly pax: PaxOverrides
  readonly map: SparseMap
  readonly realSize: number
  /** Physical data bytes left after the blocks read so far. */
  physical: number
  /** Where the rest of the map is: extension blocks, the data, or nowhere (all in PAX records). */
  readonly from: "gnu-extension" | "pax-1.0" | "records"
  /** PAX 1.0: the map's text not yet parsed (a number cut by a block boundary), and the count. */
  partial: string
  count: number | undefined
}

/**
 * The reader is a resumable synchronous parser over the byte reader's buffer: each sync call does
 * as much as the buffered bytes allow and keeps its place when they run out. The effectful `next`
 * and `readData` run it, pulling whenever it asks for more.
 */
export const makeTarReader = <E>(bytes: ByteReader<E | InvalidLayer>, layer: string): TarReader<E> => {
  const invalid = (reason: string) => new InvalidLayer({ layer, reason })
  const abort = (error: E | InvalidLayer): never => {
    throw new TarFailure(error)
  }
  const decode = <A>(parse: () => A): A => {
    try {
      return parse()
    } catch (error) {
      return abort(invalid(error instanceof TarFormatError ? error.message : `unreadable tar: ${String(error)}`))
    }
  }

  let remaining = 0
  let pad = 0
  let ended = false
  let assembly: Assembly | undefined

  /** Discards up to `n` buffered bytes; what is left to discard. */
  const discard = (n: number) => {
    let left = n
    while (left > 0 && bytes.buffered() > 0) left -= bytes.takeSomeBuffered(left).length
    if (left > 0 && bytes.ended()) abort(bytes.truncated())
    return left
  }

  /**
   * Reads the extension's data and applies it (at once: the bytes are the reader's buffer's), then
   * its padding; false when the buffer runs out first.
   */
  const readExtension = (current: Assembly, extension: Extension): boolean | "end" => {
    const what = EXTENSION_NAMES[extension.kind]
    if (extension.data === undefined) {
      if (extension.size === 0) extension.data = new Uint8Array(0)
      else if (bytes.buffered() >= extension.size) extension.data = bytes.takeBuffered(extension.size)
      else if (!bytes.ended()) return false
      else abort(bytes.buffered() === 0 ? invalid(`truncated ${what}`) : bytes.truncated())
      applyExtension(current, extension)
    }
    while (extension.padLeft > 0 && bytes.buffered() > 0) {
      extension.padLeft -= bytes.takeSomeBuffered(extension.padLeft).length
    }
    // As after an entry's data, a stream ending in the padding ends the archive (Go's reading).
    if (extension.padLeft > 0 && bytes.ended()) return "end"
    return extension.padLeft === 0
  }

  const applyExtension = (current: Assembly, extension: Extension) => {
    const data = extension.data!
    switch (extension.kind) {
      case "pax": {
        // Like Go (and GNU and BSD tar), a second PAX header before the entry replaces the first.
        const records: PaxRecords = new Map()
        current.local = records
        decode(() => parsePaxInto(data, records))
        return
      }
      case "pax-global":
        // Checked, then set aside: like Go's reader (and so containerd and Docker), banger lets no
        // global record change later entries. git archive's commit id is the usual one there.
        decode(() => parsePaxInto(data, new Map()))
        return
      // Copied: the entry's own header may come after a fill, which ends the data's view.
      case "gnu-long-name":
        current.longName = Uint8Array.from(untilNul(data))
        return
      case "gnu-long-link":
        current.longLink = Uint8Array.from(untilNul(data))
        return
    }
  }

  const nextSync = (): TarEntry | undefined | NeedMore => {
    fragments = undefined
    hidden = false
    if (remaining > 0) {
      remaining = discard(remaining)
      if (remaining > 0) return NEED_MORE
    }
    if (pad > 0) {
      while (pad > 0 && bytes.buffered() > 0) pad -= bytes.takeSomeBuffered(pad).length
      // Like Go, a stream that ends in the padding after an entry's data ends the archive there.
      if (pad > 0 && bytes.ended()) {
        pad = 0
        ended = true
      }
      if (pad > 0) return NEED_MORE
    }
    if (ended) return undefined
    assembly ??= {
      local: undefined,
      longName: undefined,
      longLink: undefined,
      extension: undefined,
      sparse: undefined,
      zeroSeen: false
    }
    const current = assembly
    if (current.sparse !== undefined) return continueSparse(current.sparse)
    while (true) {
      if (current.extension !== undefined) {
        const read = readExtension(current, current.extension)
        if (read === "end") {
          ended = true
          assembly = undefined
          return undefined
        }
        if (!read) return NEED_MORE
        current.extension = undefined
        continue
      }
      let block: Uint8Array | undefined
      if (bytes.buffered() >= BLOCK_SIZE) block = bytes.takeBuffered(BLOCK_SIZE)
      else if (!bytes.ended()) return NEED_MORE
      else if (bytes.buffered() > 0) abort(bytes.truncated())
      const header = block === undefined ? undefined : decode(() => decodeHeader(block))
      if (header === undefined) {
        // A zero block ends the archive if the stream ends there or a second one follows; like Go,
        // anything else after it is refused rather than ignored.
        if (block !== undefined && !current.zeroSeen) {
          current.zeroSeen = true
          continue
        }
        // The end: zero blocks, or (like Go) a clean end at a header boundary, even right after an
        // extended header.
        ended = true
        assembly = undefined
        return undefined
      }
      if (current.zeroSeen) abort(invalid("a zero block followed by a header: corrupt archive"))
      switch (header.kind) {
        case "pax":
        case "pax-global":
        case "gnu-long-name":
        case "gnu-long-link": {
          if (header.size > MAX_EXTENSION_SIZE) {
            abort(invalid(`${EXTENSION_NAMES[header.kind]} of ${header.size} bytes is too large`))
          }
          current.extension = { kind: header.kind, size: header.size, data: undefined, padLeft: padding(header.size) }
          continue
        }
      }
      const local = current.local
      const pax = local === undefined ? NO_OVERRIDES : decode(() => interpretPax(local))
      if (header.kind === "gnu-sparse" || pax.sparse !== undefined) {
        const sparse = startSparse(header, pax)
        const whole = sparse.from === "gnu-extension" ? !header.sparse!.extended : sparse.from === "records"
        if (whole) return finishSparse(sparse)
        current.sparse = sparse
        return continueSparse(sparse)
      }
      return finish(header, pax, undefined)
    }
  }

  /** Reads the sparse map's remaining blocks; the entry once it is whole, else `NEED_MORE`. */
  const continueSparse = (sparse: SparseAssembly): TarEntry | NeedMore => {
    while (true) {
      if (bytes.buffered() < BLOCK_SIZE) {
        if (!bytes.ended()) return NEED_MORE
        return abort(bytes.truncated())
      }
      if (sparse.from === "pax-1.0" && sparse.physical < BLOCK_SIZE)
        abort(invalid("GNU sparse 1.0 map runs past the data"))
      const block = bytes.takeBuffered(BLOCK_SIZE)
      if (sparse.from === "gnu-extension") {
        if (!decode(() => readSparseExtension(block, sparse.map))) return finishSparse(sparse)
      } else {
        sparse.physical -= BLOCK_SIZE
        if (decode(() => readMapText(sparse, block))) return finishSparse(sparse)
      }
      if (sparse.map.length > MAX_SPARSE_NUMBERS) abort(invalid("GNU sparse map is too large"))
    }
  }

  const startSparse = (viewed: RawHeader, pax: PaxOverrides): SparseAssembly => {
    // Kept while the map's blocks are read, across fills, which end the views of the header block.
    const header = { ...viewed, name: Uint8Array.from(viewed.name), linkname: Uint8Array.from(viewed.linkname) }
    const physical = pax.size ?? header.size
    if (header.kind === "gnu-sparse") {
      const old = header.sparse!
      return {
        header,
        pax,
        map: old.map,
        realSize: old.realSize,
        physical,
        from: "gnu-extension",
        partial: "",
        count: undefined
      }
    }
    const sparse = pax.sparse!
    const realSize = sparse.realSize ?? physical
    if (sparse.format === "0.x") {
      return { header, pax, map: sparse.map, realSize, physical, from: "records", partial: "", count: undefined }
    }
    return { header, pax, map: [], realSize, physical, from: "pax-1.0", partial: "", count: undefined }
  }

  const finishSparse = (sparse: SparseAssembly): TarEntry => {
    if (headerOnly(typeOf(sparse.header))) abort(invalid("a sparse map on a header-only entry"))
    const problem = sparseMapProblem(sparse.map, sparse.realSize, sparse.physical)
    if (problem !== undefined) abort(invalid(problem))
    return finish(sparse.header, sparse.pax, sparse)
  }

  const finish = (header: RawHeader, pax: PaxOverrides, sparse: SparseAssembly | undefined): TarEntry => {
    const current = assembly!
    const type = typeOf(header)
    const uid = pax.uid ?? header.uid
    const gid = pax.gid ?? header.gid
    if (uid > MAX_ID || gid > MAX_ID) abort(invalid("uid or gid out of range"))
    const physical = sparse !== undefined ? sparse.physical : (pax.size ?? header.size)
    // GNU dump directories carry data (a listing), which is skipped like any unread data.
    hidden = header.kind === "gnu-dumpdir"
    remaining = headerOnly(type) && !hidden ? 0 : physical
    pad = padding(remaining)
    if (sparse !== undefined) {
      fragments = sparse.map
      fragment = 0
      position = 0
      fragmentLeft = 0
      logicalSize = sparse.realSize
    } else fragments = undefined
    assembly = undefined
    return {
      name: pax.path ?? utf8(current.longName ?? header.name),
      type,
      mode: header.mode,
      uid,
      gid,
      mtime: pax.mtime ?? header.mtime,
      size: headerOnly(type) ? 0 : sparse !== undefined ? sparse.realSize : physical,
      linkname: pax.linkpath ?? utf8(current.longLink ?? header.linkname),
      devMajor: header.devMajor,
      devMinor: header.devMinor,
      xattrs: pax.xattrs,
      sparse: sparse?.map
    } satisfies TarEntry
  }

  /** The current sparse entry's fragments, and where its reading stands. */
  let fragments: SparseMap | undefined
  /** The current entry's data is to be skipped, not read (a GNU dump directory's listing). */
  let hidden = false
  let fragment = 0
  let position = 0
  let fragmentLeft = 0
  let logicalSize = 0

  const readDataSync = (): DataChunk | NeedMore => {
    if (hidden) return undefined
    if (fragments !== undefined) return readSparseSync(fragments)
    if (remaining === 0) return undefined
    if (bytes.buffered() === 0) return bytes.ended() ? abort(bytes.truncated()) : NEED_MORE
    const chunk = bytes.takeSomeBuffered(Math.min(remaining, MAX_DATA_CHUNK))
    remaining -= chunk.length
    return chunk
  }

  /** Fragments' bytes in order, with the holes before, between and after them as lengths. */
  const readSparseSync = (map: SparseMap): DataChunk | NeedMore => {
    while (true) {
      if (fragmentLeft > 0) {
        if (bytes.buffered() === 0) return bytes.ended() ? abort(bytes.truncated()) : NEED_MORE
        const chunk = bytes.takeSomeBuffered(Math.min(fragmentLeft, MAX_DATA_CHUNK))
        fragmentLeft -= chunk.length
        remaining -= chunk.length
        position += chunk.length
        return chunk
      }
      if (fragment < map.length) {
        const offset = map[fragment]!
        fragmentLeft = map[fragment + 1]!
        fragment += 2
        if (offset > position) {
          const hole = offset - position
          position = offset
          return hole
        }
        continue
      }
      if (position < logicalSize) {
        const hole = logicalSize - position
        position = logicalSize
        return hole
      }
      fragments = undefined
      return undefined
    }
  }

  const fill = Effect.asVoid(bytes.fill)

  /** Runs a sync call, pulling and calling again for as long as it needs more bytes. */
  const run = <A>(call: () => A | NeedMore): Effect.Effect<A, E | InvalidLayer> =>
    Effect.suspend(function step(): Effect.Effect<A, E | InvalidLayer> {
      let result: A | NeedMore
      try {
        result = call()
      } catch (error) {
        if (error instanceof TarFailure) return Effect.fail(error.error as E | InvalidLayer)
        throw error
      }
      return result === NEED_MORE ? Effect.flatMap(fill, step) : Effect.succeed(result)
    })

  return { next: run(nextSync), readData: run(readDataSync), nextSync, readDataSync, fill }
}
