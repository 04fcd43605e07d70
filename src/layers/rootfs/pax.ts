/**
 * PAX extended headers, decoded by us rather than tar-stream because values must stay raw bytes:
 * `SCHILY.xattr.security.capability` is binary, and a UTF-8 round trip would corrupt it. Numeric
 * keys (`uid`, `gid`, `mtime`, `size`) matter too: they are how ids above 2097151 and exact sizes
 * travel, and a reader that ignores them silently gets ownership wrong.
 */
import { type SparseMap, TarFormatError } from "./tar-header.js"

export type PaxRecords = Map<string, Uint8Array>

export interface PaxOverrides {
  readonly path?: string | undefined
  readonly linkpath?: string | undefined
  readonly size?: number | undefined
  readonly uid?: number | undefined
  readonly gid?: number | undefined
  readonly mtime?: number | undefined
  /** A GNU sparse file in one of the PAX formats (0.0, 0.1: map in the records; 1.0: map in the data). */
  readonly sparse?: PaxSparse | undefined
  readonly xattrs: ReadonlyArray<readonly [name: string, value: Uint8Array]>
}

export type PaxSparse =
  | { readonly format: "0.x"; readonly map: SparseMap; readonly realSize: number | undefined }
  | { readonly format: "1.0"; readonly realSize: number | undefined }

const fail = (reason: string): never => {
  throw new TarFormatError(reason)
}

const SCHILY_XATTR = "SCHILY.xattr."
const LIBARCHIVE_XATTR = "LIBARCHIVE.xattr."

const isXattrKey = (key: string) => key.startsWith(SCHILY_XATTR) || key.startsWith(LIBARCHIVE_XATTR)

const SPARSE_OFFSET = "GNU.sparse.offset"
const SPARSE_NUMBYTES = "GNU.sparse.numbytes"
const SPARSE_MAP = "GNU.sparse.map"

// Keys whose values are names: a NUL in them would silently cut them short (Go refuses them too).
const isNameKey = (key: string) => key === "path" || key === "linkpath" || key === "uname" || key === "gname"

/**
 * Parses `"<len> <key>=<value>\n"` records into `into`, in order. An empty value deletes the key
 * (POSIX: it cancels a global or earlier value), except for xattrs, where empty is a real value.
 * GNU sparse 0.0 repeats `GNU.sparse.offset` / `GNU.sparse.numbytes` pairs; like Go, they are
 * joined into one `GNU.sparse.map`, which is what 0.1 writes.
 */
export const parsePaxInto = (data: Uint8Array, into: PaxRecords): void => {
  let offset = 0
  let sparsePairs: Array<string> | undefined
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
    if (key.includes("\0")) fail("PAX record key contains a NUL byte")
    // Copy: the record's bytes belong to a buffer the reader will reuse.
    const value = Uint8Array.from(record.subarray(equals + 1))
    if (isNameKey(key) && value.includes(0)) fail(`PAX ${key} contains a NUL byte`)
    offset = end
    if (key === SPARSE_OFFSET || key === SPARSE_NUMBYTES) {
      sparsePairs ??= []
      const expected = sparsePairs.length % 2 === 0 ? SPARSE_OFFSET : SPARSE_NUMBYTES
      if (key !== expected || value.includes(0x2c)) fail("GNU sparse 0.0 map records out of order")
      sparsePairs.push(text(value))
      continue
    }
    if (value.length === 0 && !isXattrKey(key)) into.delete(key)
    else into.set(key, value)
  }
  if (sparsePairs !== undefined) into.set(SPARSE_MAP, Buffer.from(sparsePairs.join(",")))
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

/** What an entry without PAX records gets: most entries of most layers. */
export const NO_OVERRIDES: PaxOverrides = Object.freeze({
  path: undefined,
  linkpath: undefined,
  size: undefined,
  uid: undefined,
  gid: undefined,
  mtime: undefined,
  sparse: undefined,
  xattrs: Object.freeze([])
})

export const interpretPax = (records: PaxRecords): PaxOverrides => {
  if (records.size === 0) return NO_OVERRIDES
  const xattrs = new Map<string, Uint8Array>()
  let path: string | undefined
  let linkpath: string | undefined
  let size: number | undefined
  let uid: number | undefined
  let gid: number | undefined
  let mtime: number | undefined
  let sparseRecords: Map<string, string> | undefined
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
      sparseRecords ??= new Map()
      sparseRecords.set(key, text(value))
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
  const sparse = sparseRecords === undefined ? undefined : sparseOf(sparseRecords)
  if (sparse !== undefined) {
    const name = sparseRecords!.get("GNU.sparse.name")
    if (name !== undefined && name !== "") path = name
  }
  return { path, linkpath, size, uid, gid, mtime, sparse, xattrs: [...xattrs] }
}

const decimal = (what: string, raw: string): number => {
  if (!/^[0-9]+$/.test(raw)) fail(`PAX ${what} is not a non-negative integer`)
  const parsed = Number(raw)
  if (!Number.isSafeInteger(parsed)) fail(`PAX ${what} out of range`)
  return parsed
}

/** Which GNU sparse format the records describe, as Go's readGNUSparsePAXHeaders tells them apart. */
const sparseOf = (records: Map<string, string>): PaxSparse | undefined => {
  const major = records.get("GNU.sparse.major")
  const minor = records.get("GNU.sparse.minor")
  const map = records.get(SPARSE_MAP)
  let format: "0.x" | "1.0"
  if (major === "0" && (minor === "0" || minor === "1")) format = "0.x"
  else if (major === "1" && minor === "0") format = "1.0"
  else if (major !== undefined || minor !== undefined) return fail(`GNU sparse format ${major}.${minor} is unknown`)
  else if (map !== undefined && map !== "") format = "0.x"
  else return undefined
  const rawSize = records.get("GNU.sparse.size") ?? records.get("GNU.sparse.realsize")
  const realSize = rawSize === undefined ? undefined : decimal("GNU.sparse size", rawSize)
  if (format === "1.0") return { format, realSize }
  const count = decimal("GNU.sparse.numblocks", records.get("GNU.sparse.numblocks") ?? "")
  const numbers = map === undefined || map === "" ? [] : map.split(",")
  if (numbers.length !== 2 * count) fail("GNU sparse map does not hold GNU.sparse.numblocks entries")
  return { format, map: numbers.map((number) => decimal("GNU.sparse.map", number)), realSize }
}
