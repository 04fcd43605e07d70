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
  /**
   * `next` on the buffered bytes only: `NEED_MORE` when they run out (then `fill` and call again,
   * which resumes where this call stopped). Failures are thrown as `TarFailure`.
   */
  readonly nextSync: () => TarEntry | undefined | NeedMore
  /** `readData` on the buffered bytes only, as `nextSync`. */
  readonly readDataSync: () => Uint8Array | undefined | NeedMore
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
  readonly local: PaxRecords
  longName: Uint8Array | undefined
  longLink: Uint8Array | undefined
  /** An extension that must be followed by an entry header has been read. */
  pending: boolean
  extension: Extension | undefined
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

  const global: PaxRecords = new Map()
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

  /** Reads the extension's data and padding; false when the buffer runs out first. */
  const readExtension = (extension: Extension): boolean => {
    const what = EXTENSION_NAMES[extension.kind]
    if (extension.data === undefined) {
      if (extension.size === 0) extension.data = new Uint8Array(0)
      else if (bytes.buffered() >= extension.size) extension.data = bytes.takeBuffered(extension.size)
      else if (!bytes.ended()) return false
      else abort(bytes.buffered() === 0 ? invalid(`truncated ${what}`) : bytes.truncated())
    }
    extension.padLeft = discard(extension.padLeft)
    return extension.padLeft === 0
  }

  const applyExtension = (current: Assembly, extension: Extension) => {
    const data = extension.data!
    switch (extension.kind) {
      case "pax":
        decode(() => parsePaxInto(data, current.local))
        current.pending = true
        return
      case "pax-global":
        decode(() => parsePaxInto(data, global))
        decode(() => parsePaxInto(data, current.local))
        return
      case "gnu-long-name":
        current.longName = untilNul(data)
        current.pending = true
        return
      case "gnu-long-link":
        current.longLink = untilNul(data)
        current.pending = true
        return
    }
  }

  const nextSync = (): TarEntry | undefined | NeedMore => {
    if (remaining > 0) {
      remaining = discard(remaining)
      if (remaining > 0) return NEED_MORE
    }
    if (pad > 0) {
      pad = discard(pad)
      if (pad > 0) return NEED_MORE
    }
    if (ended) return undefined
    assembly ??= {
      local: new Map(global),
      longName: undefined,
      longLink: undefined,
      pending: false,
      extension: undefined
    }
    const current = assembly
    while (true) {
      if (current.extension !== undefined) {
        if (!readExtension(current.extension)) return NEED_MORE
        const extension = current.extension
        current.extension = undefined
        applyExtension(current, extension)
        continue
      }
      let block: Uint8Array | undefined
      if (bytes.buffered() >= BLOCK_SIZE) block = bytes.takeBuffered(BLOCK_SIZE)
      else if (!bytes.ended()) return NEED_MORE
      else if (bytes.buffered() > 0) abort(bytes.truncated())
      const header = block === undefined ? undefined : decode(() => decodeHeader(block))
      if (header === undefined) {
        if (current.pending) abort(invalid("archive ends right after an extended header"))
        // End of archive: a zero block, or (leniently, like Go) a clean end at a header boundary.
        ended = true
        assembly = undefined
        return undefined
      }
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
      const type = header.kind
      const pax = decode(() => interpretPax(current.local))
      const uid = pax.uid ?? header.uid
      const gid = pax.gid ?? header.gid
      if (uid > MAX_ID || gid > MAX_ID) abort(invalid("uid or gid out of range"))
      const size = headerOnly(type) ? 0 : (pax.size ?? header.size)
      remaining = size
      pad = padding(size)
      assembly = undefined
      return {
        name: pax.path ?? utf8(current.longName ?? header.name),
        type,
        mode: header.mode,
        uid,
        gid,
        mtime: pax.mtime ?? header.mtime,
        size,
        linkname: pax.linkpath ?? utf8(current.longLink ?? header.linkname),
        devMajor: header.devMajor,
        devMinor: header.devMinor,
        xattrs: pax.xattrs
      } satisfies TarEntry
    }
  }

  const readDataSync = (): Uint8Array | undefined | NeedMore => {
    if (remaining === 0) return undefined
    if (bytes.buffered() === 0) return bytes.ended() ? abort(bytes.truncated()) : NEED_MORE
    const chunk = bytes.takeSomeBuffered(Math.min(remaining, MAX_DATA_CHUNK))
    remaining -= chunk.length
    return chunk
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
