/**
 * PAX extended headers, decoded by us rather than tar-stream because values must stay raw bytes:
 * `SCHILY.xattr.security.capability` is binary, and a UTF-8 round trip would corrupt it. Numeric
 * keys (`uid`, `gid`, `mtime`, `size`) matter too: they are how ids above 2097151 and exact sizes
 * travel, and a reader that ignores them silently gets ownership wrong.
 */
import { TarFormatError } from "./tar-header.js"

export type PaxRecords = Map<string, Uint8Array>

export interface PaxOverrides {
  readonly path?: string | undefined
  readonly linkpath?: string | undefined
  readonly size?: number | undefined
  readonly uid?: number | undefined
  readonly gid?: number | undefined
  readonly mtime?: number | undefined
  readonly xattrs: ReadonlyArray<readonly [name: string, value: Uint8Array]>
}

const fail = (reason: string): never => {
  throw new TarFormatError(reason)
}

const SCHILY_XATTR = "SCHILY.xattr."
const LIBARCHIVE_XATTR = "LIBARCHIVE.xattr."

const isXattrKey = (key: string) => key.startsWith(SCHILY_XATTR) || key.startsWith(LIBARCHIVE_XATTR)

/**
 * Parses `"<len> <key>=<value>\n"` records into `into`, in order. An empty value deletes the key
 * (POSIX: it cancels a global or earlier value), except for xattrs, where empty is a real value.
 */
export const parsePaxInto = (data: Uint8Array, into: PaxRecords): void => {
  let offset = 0
  while (offset < data.length) {
    // Writers pad the data with NULs; nothing after the first one is a record.
    if (data[offset] === 0) break
    const space = data.indexOf(0x20, offset)
    if (space === -1 || space - offset > 20) fail("malformed PAX record length")
    const digits = Buffer.from(data.subarray(offset, space)).toString("latin1")
    if (!/^[0-9]+$/.test(digits)) fail("malformed PAX record length")
    const length = Number(digits)
    const end = offset + length
    if (length <= space - offset + 1 || end > data.length || data[end - 1] !== 0x0a) fail("malformed PAX record")
    const record = data.subarray(space + 1, end - 1)
    const equals = record.indexOf(0x3d)
    if (equals <= 0) fail("PAX record without a key")
    const key = Buffer.from(record.subarray(0, equals)).toString("utf8")
    // Copy: the record's bytes belong to a buffer the reader will reuse.
    const value = Uint8Array.from(record.subarray(equals + 1))
    if (value.length === 0 && !isXattrKey(key)) into.delete(key)
    else into.set(key, value)
    offset = end
  }
}

const text = (value: Uint8Array) => Buffer.from(value).toString("utf8")

const integer = (key: string, value: Uint8Array, max: number): number => {
  const digits = text(value)
  if (!/^[0-9]+$/.test(digits)) fail(`PAX ${key} is not a non-negative integer`)
  const parsed = Number(digits)
  if (!(parsed <= max)) fail(`PAX ${key} out of range`)
  return parsed
}

// PAX times are decimal seconds with an optional fraction; the tree keeps whole seconds.
const seconds = (value: Uint8Array): number => {
  const raw = text(value)
  if (!/^-?[0-9]+(\.[0-9]*)?$/.test(raw)) fail("PAX mtime is not a decimal number")
  const parsed = Math.floor(Number(raw))
  if (!Number.isSafeInteger(parsed)) fail("PAX mtime out of range")
  return parsed
}

const decodeLibarchiveName = (encoded: string): string => {
  try {
    return decodeURIComponent(encoded)
  } catch {
    return fail("malformed LIBARCHIVE.xattr name")
  }
}

const MAX_ID = 0xffff_ffff

export const interpretPax = (records: PaxRecords): PaxOverrides => {
  const xattrs = new Map<string, Uint8Array>()
  let path: string | undefined
  let linkpath: string | undefined
  let size: number | undefined
  let uid: number | undefined
  let gid: number | undefined
  let mtime: number | undefined
  for (const [key, value] of records) {
    if (key.startsWith(SCHILY_XATTR)) {
      const name = key.slice(SCHILY_XATTR.length)
      if (name !== "") xattrs.set(name, value)
    } else if (key.startsWith(LIBARCHIVE_XATTR)) {
      // libarchive URL-encodes the name and base64-encodes the value (and often writes SCHILY too:
      // the Map keeps one value per name, at the position it first appeared).
      const name = decodeLibarchiveName(key.slice(LIBARCHIVE_XATTR.length))
      if (name !== "") xattrs.set(name, Uint8Array.from(Buffer.from(text(value), "base64")))
    } else if (key.startsWith("GNU.sparse.")) {
      fail("GNU sparse files are not supported")
    } else {
      switch (key) {
        case "path":
          path = text(value)
          break
        case "linkpath":
          linkpath = text(value)
          break
        case "size":
          size = integer(key, value, Number.MAX_SAFE_INTEGER)
          break
        case "uid":
          uid = integer(key, value, MAX_ID)
          break
        case "gid":
          gid = integer(key, value, MAX_ID)
          break
        case "mtime":
          mtime = seconds(value)
          break
      }
    }
  }
  return { path, linkpath, size, uid, gid, mtime, xattrs: [...xattrs] }
}
