/**
 * Decoding of one 512-byte tar header block: POSIX ustar, GNU and old v7 layouts, octal and
 * base-256 numbers. Pure and synchronous; malformed input throws `TarFormatError`, which the tar
 * reader turns into `InvalidLayer` at its single boundary.
 */

export class TarFormatError extends Error {}

export const BLOCK_SIZE = 512

export type TarEntryType = "file" | "link" | "symlink" | "char" | "block" | "directory" | "fifo"

export type HeaderKind = TarEntryType | "pax" | "pax-global" | "gnu-long-name" | "gnu-long-link"

export interface RawHeader {
  readonly kind: HeaderKind
  /** Name bytes, ustar prefix already joined; decoding to text is the reader's business. */
  readonly name: Uint8Array
  readonly linkname: Uint8Array
  readonly mode: number
  readonly uid: number
  readonly gid: number
  /** Bytes of data following the header as written in the header (before PAX overrides). */
  readonly size: number
  readonly mtime: number
  readonly devMajor: number
  readonly devMinor: number
}

const fail = (reason: string): never => {
  throw new TarFormatError(reason)
}

const field = (block: Uint8Array, offset: number, length: number): Uint8Array => {
  const slice = block.subarray(offset, offset + length)
  const nul = slice.indexOf(0)
  return nul === -1 ? slice : slice.subarray(0, nul)
}

/** Octal with optional space/NUL padding, or GNU base-256 when the high bit of the first byte is set. */
const numeric = (block: Uint8Array, offset: number, length: number, what: string): number => {
  const bytes = block.subarray(offset, offset + length)
  if ((bytes[0]! & 0x80) !== 0) {
    if (bytes[0] !== 0x80) fail(`negative or malformed base-256 ${what}`)
    let value = 0
    for (let i = 1; i < bytes.length; i++) {
      value = value * 256 + bytes[i]!
      if (value > Number.MAX_SAFE_INTEGER) fail(`${what} out of range`)
    }
    return value
  }
  let value = 0
  let i = 0
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0)) i++
  for (; i < bytes.length; i++) {
    const byte = bytes[i]!
    if (byte === 0x20 || byte === 0) break
    if (byte < 0x30 || byte > 0x37) fail(`non-octal digit in ${what}`)
    value = value * 8 + (byte - 0x30)
  }
  if (value > Number.MAX_SAFE_INTEGER) fail(`${what} out of range`)
  return value
}

const isZeroBlock = (block: Uint8Array) => block.every((byte) => byte === 0)

// Some historic writers summed signed chars; accept either sum, as GNU tar does.
const checksumMatches = (block: Uint8Array): boolean => {
  const stored = numeric(block, 148, 8, "checksum")
  let unsigned = 0
  let signed = 0
  for (let i = 0; i < BLOCK_SIZE; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i]!
    unsigned += byte
    signed += byte > 127 ? byte - 256 : byte
  }
  return stored === unsigned || stored === signed
}

const kindOf = (flag: number, name: Uint8Array): HeaderKind => {
  switch (String.fromCharCode(flag)) {
    case "\0":
      // v7 archives mark directories only by a trailing slash.
      return name[name.length - 1] === 0x2f ? "directory" : "file"
    case "0":
    case "7":
      return "file"
    case "1":
      return "link"
    case "2":
      return "symlink"
    case "3":
      return "char"
    case "4":
      return "block"
    case "5":
      return "directory"
    case "6":
      return "fifo"
    case "x":
      return "pax"
    case "g":
      return "pax-global"
    case "L":
      return "gnu-long-name"
    case "K":
      return "gnu-long-link"
    case "S":
      return fail("GNU sparse files are not supported")
    default:
      return fail(`unsupported tar entry type ${JSON.stringify(String.fromCharCode(flag))}`)
  }
}

const USTAR = Buffer.from("ustar\0")

/** `undefined` for an all-zero block (end of archive). */
export const decodeHeader = (block: Uint8Array): RawHeader | undefined => {
  if (block.length !== BLOCK_SIZE) fail("short header block")
  if (isZeroBlock(block)) return undefined
  if (!checksumMatches(block)) fail("header checksum mismatch (not a tar, or corrupt)")
  let name = field(block, 0, 100)
  // Only POSIX ustar has a prefix field; GNU keeps atime/ctime at that offset.
  if (Buffer.compare(block.subarray(257, 263), USTAR) === 0) {
    const prefix = field(block, 345, 155)
    if (prefix.length > 0) name = Buffer.concat([prefix, Buffer.from("/"), name])
  }
  const kind = kindOf(block[156]!, name)
  // Device numbers are garbage in some writers' non-device headers; read them only where they mean something.
  const isDevice = kind === "char" || kind === "block"
  return {
    kind,
    name,
    linkname: field(block, 157, 100),
    mode: numeric(block, 100, 8, "mode") & 0o7777,
    uid: numeric(block, 108, 8, "uid"),
    gid: numeric(block, 116, 8, "gid"),
    size: numeric(block, 124, 12, "size"),
    mtime: numeric(block, 136, 12, "mtime"),
    devMajor: isDevice ? numeric(block, 329, 8, "devmajor") : 0,
    devMinor: isDevice ? numeric(block, 337, 8, "devminor") : 0
  }
}
