/**
 * CRC-32C (Castagnoli) as ext4 and jbd2 use it: `crc32cUpdate(seed, bytes)` continues from `seed`
 * with no inversion before or after, like the kernel's `crc32c(crc, p, len)`. Slicing by 8 keeps a
 * full image's metadata (a few MiB) to milliseconds.
 */
const POLY = 0x82f63b78

const tables: Array<Uint32Array> = (() => {
  const base = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1
    base[n] = c >>> 0
  }
  const all = [base]
  for (let t = 1; t < 8; t++) {
    const previous = all[t - 1]!
    const table = new Uint32Array(256)
    for (let n = 0; n < 256; n++) table[n] = (previous[n]! >>> 8) ^ base[previous[n]! & 0xff]!
    all.push(table)
  }
  return all
})()
const [t0, t1, t2, t3, t4, t5, t6, t7] = tables as [
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array
]

export const crc32cUpdate = (seed: number, bytes: Uint8Array, start = 0, end = bytes.length): number => {
  let crc = seed >>> 0
  let i = start
  for (; i + 8 <= end; i += 8) {
    const low = (crc ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))) >>> 0
    crc =
      t7[low & 0xff]! ^
      t6[(low >>> 8) & 0xff]! ^
      t5[(low >>> 16) & 0xff]! ^
      t4[low >>> 24]! ^
      t3[bytes[i + 4]!]! ^
      t2[bytes[i + 5]!]! ^
      t1[bytes[i + 6]!]! ^
      t0[bytes[i + 7]!]!
  }
  for (; i < end; i++) crc = t0[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8)
  return crc >>> 0
}

const word = new Uint8Array(4)

/** Continues a checksum over one little-endian 32-bit number (group and inode numbers). */
export const crc32cUpdateU32 = (seed: number, value: number): number => {
  word[0] = value & 0xff
  word[1] = (value >>> 8) & 0xff
  word[2] = (value >>> 16) & 0xff
  word[3] = (value >>> 24) & 0xff
  return crc32cUpdate(seed, word)
}

/** The standard CRC-32C of `bytes` (inverted in and out), for checking against known values. */
export const crc32c = (bytes: Uint8Array): number => ~crc32cUpdate(0xffffffff, bytes) >>> 0
