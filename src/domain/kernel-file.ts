/**
 * What a kernel file is, read from its bytes (never its name): an ELF vmlinux or an x86 bzImage,
 * and the release it was built as, from its `Linux version <release> ...` banner.
 */
import type { KernelFormat } from "./image.js"

/** Enough of the file to tell its format and, for a bzImage, to reach its version string. */
export const KERNEL_HEAD_BYTES = 64 * 1024

const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const
/** The x86 boot protocol's setup header: boot flag 0xAA55 at 0x1FE, "HdrS" at 0x202. */
const BOOT_FLAG_OFFSET = 0x1fe
const HEADER_MAGIC_OFFSET = 0x202
const HEADER_MAGIC = "HdrS"
/** `kernel_version`: a pointer to the version string, counted from 0x200. */
const VERSION_POINTER_OFFSET = 0x20e
const VERSION_POINTER_BASE = 0x200

export const detectKernelFormat = (head: Uint8Array): KernelFormat | undefined => {
  if (ELF_MAGIC.every((byte, index) => head[index] === byte)) return "elf"
  if (head.length < HEADER_MAGIC_OFFSET + 4) return undefined
  const bootFlag = head[BOOT_FLAG_OFFSET]! | (head[BOOT_FLAG_OFFSET + 1]! << 8)
  const magic = String.fromCharCode(...head.subarray(HEADER_MAGIC_OFFSET, HEADER_MAGIC_OFFSET + 4))
  return bootFlag === 0xaa55 && magic === HEADER_MAGIC ? "bzImage" : undefined
}

const printable = (byte: number) => byte > 0x20 && byte < 0x7f

/** The first word of a NUL-terminated string at `offset`: `6.1.0-28-cloud-amd64`. */
const releaseAt = (bytes: Uint8Array, offset: number): string | undefined => {
  let end = offset
  while (end < bytes.length && printable(bytes[end]!)) end++
  return end > offset ? String.fromCharCode(...bytes.subarray(offset, end)) : undefined
}

/** The release in a bzImage's setup header version string (uncompressed, unlike the banner). */
export const bzImageRelease = (head: Uint8Array): string | undefined => {
  if (head.length < VERSION_POINTER_OFFSET + 2) return undefined
  const pointer = head[VERSION_POINTER_OFFSET]! | (head[VERSION_POINTER_OFFSET + 1]! << 8)
  if (pointer === 0) return undefined
  return releaseAt(head, pointer + VERSION_POINTER_BASE)
}

export const BANNER = new TextEncoder().encode("Linux version ")

/**
 * Scans an uncompressed kernel for its banner, chunk by chunk: keeps the tail of each chunk so a
 * banner split across two chunks is still found. `push` answers the release once found.
 */
export const bannerScanner = () => {
  let carry: Uint8Array = new Uint8Array(0)
  // A release is short; 256 bytes after the banner is plenty and keeps the carry small.
  const keep = BANNER.length + 256
  return (chunk: Uint8Array): string | undefined => {
    const bytes = new Uint8Array(carry.length + chunk.length)
    bytes.set(carry)
    bytes.set(chunk, carry.length)
    let from = 0
    for (;;) {
      const at = indexOf(bytes, BANNER, from)
      if (at === -1) break
      const start = at + BANNER.length
      // Not enough bytes yet to be sure the release ended: wait for the next chunk.
      if (bytes.length - start < 64 && chunk.length > 0) break
      const release = releaseAt(bytes, start)
      if (release !== undefined && /^\d/.test(release)) return release
      from = at + 1
    }
    carry = bytes.subarray(Math.max(0, bytes.length - keep))
    return undefined
  }
}

const indexOf = (haystack: Uint8Array, needle: Uint8Array, from: number) => {
  const first = needle[0]!
  for (let i = haystack.indexOf(first, from); i !== -1 && i <= haystack.length - needle.length; ) {
    let j = 1
    while (j < needle.length && haystack[i + j] === needle[j]) j++
    if (j === needle.length) return i
    i = haystack.indexOf(first, i + 1)
  }
  return -1
}

/** A modules directory named like a release (`6.1.0-test`) gives the version; anything else does not. */
export const releaseFromModulesDir = (name: string): string | undefined =>
  /^\d+\.\d+[\w.+~-]*$/.test(name) ? name : undefined
