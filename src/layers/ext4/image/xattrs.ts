/**
 * Extended attributes as ext4 stores them: in the inode's spare 96 bytes while they fit, the rest in
 * one attribute block. Names lose a known prefix to an index byte, and POSIX ACLs take ext4's own
 * compact form (what the kernel and debugfs's `ea_set` do with the values a tar carries).
 */
import { crc32cUpdate, crc32cUpdateU32 } from "./crc32c.js"
import { BLOCK_SIZE, INODE_SIZE } from "./format.js"
import { INLINE_XATTR_OFFSET } from "./inode.js"

const MAGIC = 0xea020000
const BLOCK_HEADER = 32
const ENTRY_HEADER = 16

// First match wins, as in e2fsprogs: the ACL names before the plain "system." prefix.
const PREFIXES: ReadonlyArray<readonly [index: number, prefix: string]> = [
  [10, "gnu."],
  [3, "system.posix_acl_default"],
  [2, "system.posix_acl_access"],
  [8, "system.richacl"],
  [6, "security."],
  [4, "trusted."],
  [7, "system."],
  [1, "user."]
]

interface Attribute {
  readonly index: number
  readonly name: Uint8Array
  readonly value: Uint8Array
}

const pad4 = (length: number) => (length + 3) & ~3
const entrySize = (attribute: Attribute) => pad4(ENTRY_HEADER + attribute.name.length)

/** The Linux ACL xattr format (version 2, 8-byte entries) in ext4's (version 1, short entries without an id). */
const aclToDisk = (value: Uint8Array): Uint8Array | undefined => {
  if (value.length < 4 || (value.length - 4) % 8 !== 0 || value.length === 4) return undefined
  const input = new DataView(value.buffer, value.byteOffset, value.length)
  if (input.getUint32(0, true) !== 2) return undefined
  const out = new Uint8Array(value.length)
  const output = new DataView(out.buffer)
  output.setUint32(0, 1, true)
  let size = 4
  for (let offset = 4; offset < value.length; offset += 8) {
    const tag = input.getUint16(offset, true)
    output.setUint16(size, tag, true)
    output.setUint16(size + 2, input.getUint16(offset + 2, true), true)
    if (tag === 0x01 || tag === 0x04 || tag === 0x10 || tag === 0x20) size += 4
    else if (tag === 0x02 || tag === 0x08) {
      output.setUint32(size + 4, input.getUint32(offset + 4, true), true)
      size += 8
    } else return undefined
  }
  return out.subarray(0, size)
}

const toAttribute = (name: string, value: Uint8Array): Attribute | string => {
  const [index, prefix] = PREFIXES.find(([, candidate]) => name.startsWith(candidate)) ?? [0, ""]
  const suffix = Buffer.from(name.slice(prefix.length))
  if (suffix.length > 255) return `xattr name ${JSON.stringify(name)} is longer than 255 bytes`
  if (index === 2 || index === 3) {
    const disk = aclToDisk(value)
    if (disk === undefined) return `xattr ${name} is not a valid POSIX ACL`
    return { index, name: suffix, value: disk }
  }
  return { index, name: suffix, value }
}

/** The entry hash, over the name bytes and the value as little-endian words. */
const entryHash = (attribute: Attribute) => {
  let hash = 0
  for (const byte of attribute.name) hash = ((hash << 5) ^ (hash >>> 27) ^ byte) >>> 0
  if (attribute.value.length > 0) {
    const padded = new Uint8Array(pad4(attribute.value.length))
    padded.set(attribute.value)
    const view = new DataView(padded.buffer)
    for (let offset = 0; offset < padded.length; offset += 4) {
      hash = ((hash << 16) ^ (hash >>> 16) ^ view.getUint32(offset, true)) >>> 0
    }
  }
  return hash
}

const compare = (a: Attribute, b: Attribute) =>
  a.index - b.index || a.name.length - b.name.length || Buffer.compare(a.name, b.name)

/**
 * Writes entries from `entriesAt` and values down from `end` (offsets relative to `base`); returns
 * the entry hashes.
 */
const place = (
  target: Uint8Array,
  attributes: ReadonlyArray<Attribute>,
  entriesAt: number,
  end: number,
  base: number
): Array<number> => {
  const view = new DataView(target.buffer, target.byteOffset, target.length)
  let entry = entriesAt
  let valueEnd = end
  const hashes: Array<number> = []
  for (const attribute of attributes) {
    let offset = 0
    if (attribute.value.length > 0) {
      valueEnd -= pad4(attribute.value.length)
      target.set(attribute.value, valueEnd)
      offset = valueEnd - base
    }
    const hash = entryHash(attribute)
    hashes.push(hash)
    view.setUint8(entry, attribute.name.length)
    view.setUint8(entry + 1, attribute.index)
    view.setUint16(entry + 2, offset, true)
    view.setUint32(entry + 4, 0, true)
    view.setUint32(entry + 8, attribute.value.length, true)
    view.setUint32(entry + 12, hash, true)
    target.set(attribute.name, entry + ENTRY_HEADER)
    entry += entrySize(attribute)
  }
  return hashes
}

export interface EncodedXattrs {
  /** The inode's bytes from offset 0xA0 on (header and entries), when any attribute lives there. */
  readonly inline: Uint8Array | undefined
  /** The attribute block without its checksum (see `sealXattrBlock`), when some do not fit the inode. */
  readonly block: Uint8Array | undefined
}

const INLINE_BYTES = INODE_SIZE - INLINE_XATTR_OFFSET
const bytesOf = (attributes: ReadonlyArray<Attribute>) =>
  attributes.reduce((sum, attribute) => sum + entrySize(attribute) + pad4(attribute.value.length), 4)

/** The attributes laid out, or why they cannot be stored. */
export const encodeXattrs = (
  xattrs: ReadonlyArray<readonly [name: string, value: Uint8Array]>
): EncodedXattrs | string => {
  if (xattrs.length === 0) return { inline: undefined, block: undefined }
  const attributes: Array<Attribute> = []
  for (const [name, value] of xattrs) {
    const attribute = toAttribute(name, value)
    if (typeof attribute === "string") return attribute
    attributes.push(attribute)
  }
  attributes.sort(compare)
  const inline: Array<Attribute> = []
  const outside: Array<Attribute> = []
  for (const attribute of attributes) {
    // 4 bytes of the inline area hold its magic number.
    if (4 + bytesOf([...inline, attribute]) <= INLINE_BYTES) inline.push(attribute)
    else outside.push(attribute)
  }
  let inlineBytes: Uint8Array | undefined
  if (inline.length > 0) {
    inlineBytes = new Uint8Array(INLINE_BYTES)
    new DataView(inlineBytes.buffer).setUint32(0, MAGIC, true)
    place(inlineBytes, inline, 4, INLINE_BYTES, 4)
  }
  let block: Uint8Array | undefined
  if (outside.length > 0) {
    if (BLOCK_HEADER + bytesOf(outside) > BLOCK_SIZE) {
      return `xattrs take ${BLOCK_HEADER + bytesOf(outside)} bytes outside the inode, more than one ${BLOCK_SIZE}-byte block`
    }
    block = new Uint8Array(BLOCK_SIZE)
    const view = new DataView(block.buffer)
    view.setUint32(0, MAGIC, true)
    view.setUint32(4, 1, true)
    view.setUint32(8, 1, true)
    const hashes = place(block, outside, BLOCK_HEADER, BLOCK_SIZE, 0)
    let hash = 0
    // An entry without a hash leaves the block without one, as the kernel computes it.
    for (const entry of hashes) hash = entry === 0 ? 0 : ((hash << 16) ^ (hash >>> 16) ^ entry) >>> 0
    view.setUint32(12, hash, true)
  }
  return { inline: inlineBytes, block }
}

/** Sets the block's checksum once its number is known. */
export const sealXattrBlock = (block: Uint8Array, blockNumber: number, fsSeed: number) => {
  const view = new DataView(block.buffer, block.byteOffset, block.length)
  view.setUint32(16, 0, true)
  let crc = crc32cUpdateU32(fsSeed, blockNumber % 2 ** 32)
  crc = crc32cUpdateU32(crc, Math.floor(blockNumber / 2 ** 32))
  view.setUint32(16, crc32cUpdate(crc, block), true)
}
