/** Recognizing ext4 by its superblock: banger's own writer's superblock, then each way it can be wrong. */
import { describe, expect, it } from "vitest"
import { encodeSuperblock } from "../../src/layers/ext4/image/superblock.js"
import { checkExt4Superblock, SUPERBLOCK_END, SUPERBLOCK_OFFSET } from "../../src/layers/ext4/superblock-check.js"

const BLOCKS = 16384
const SIZE = BLOCKS * 4096

/** The first 2 KiB of a 64 MiB ext4 as banger writes it (4 KiB blocks, 64bit, metadata_csum). */
const head = () => {
  const bytes = new Uint8Array(SUPERBLOCK_END)
  const superblock = encodeSuperblock(
    {
      blocks: BLOCKS,
      inodes: 4096,
      inodesPerGroup: 4096,
      freeBlocks: 1000,
      freeInodes: 4000,
      reservedBlocks: 0,
      timestamp: 1_764_900_000,
      uuid: new Uint8Array(16).fill(7),
      label: new Uint8Array(16),
      hashSeed: new Uint8Array(16).fill(3),
      journal: undefined
    },
    0
  )
  bytes.set(superblock, SUPERBLOCK_OFFSET)
  return bytes
}

const view = (bytes: Uint8Array) => new DataView(bytes.buffer, SUPERBLOCK_OFFSET)
const problemOf = (bytes: Uint8Array, size = SIZE) => {
  const checked = checkExt4Superblock(bytes, size)
  return "problem" in checked ? checked.problem : undefined
}

describe("checkExt4Superblock", () => {
  it("accepts a valid superblock and reports its geometry", () => {
    expect(checkExt4Superblock(head(), SIZE)).toEqual({ geometry: { blockSize: 4096, blocks: BLOCKS, bytes: SIZE } })
    // A file larger than its filesystem (e.g. grown, not yet resized) is fine.
    expect(problemOf(head(), SIZE + 4096)).toBeUndefined()
  })

  it("refuses a file too small to hold a superblock", () => {
    expect(problemOf(head().subarray(0, 1500), 1500)).toBe(
      "not an ext4 filesystem: 1500 bytes is too small to hold a superblock"
    )
  })

  it("refuses a missing magic, naming what it found", () => {
    const bytes = head()
    view(bytes).setUint16(0x38, 0x1234, true)
    expect(problemOf(bytes)).toBe(
      "not an ext4 filesystem: no superblock magic at byte 1080 (found 0x1234, expected 0xef53)"
    )
    expect(problemOf(new Uint8Array(SUPERBLOCK_END))).toContain("found 0x0000")
  })

  it("refuses a filesystem larger than the file (a truncated copy)", () => {
    expect(problemOf(head(), SIZE - 4096)).toBe(
      `truncated ext4 filesystem: its superblock says ${BLOCKS} blocks of 4096 bytes (${SIZE} bytes) but the file has ${SIZE - 4096}`
    )
  })

  it("refuses a superblock whose checksum does not match", () => {
    const bytes = head()
    view(bytes).setUint32(0x10, 3999, true) // free inodes, changed without resealing
    expect(problemOf(bytes)).toBe("corrupt ext4 superblock: its checksum does not match")
  })

  it("refuses out-of-range or inconsistent geometry before trusting it", () => {
    const hugeBlocks = head()
    view(hugeBlocks).setUint32(0x18, 7, true)
    expect(problemOf(hugeBlocks)).toBe("corrupt ext4 superblock: block size 2^17 is out of range")
    for (const offset of [0x00, 0x04, 0x20, 0x28]) {
      const bytes = head()
      view(bytes).setUint32(offset, 0, true)
      if (offset === 0x04) view(bytes).setUint32(0x150, 0, true)
      expect(problemOf(bytes), `field at 0x${offset.toString(16)}`).toMatch(/counts are inconsistent/)
    }
    const firstBlock = head()
    view(firstBlock).setUint32(0x14, 1, true)
    expect(problemOf(firstBlock)).toMatch(/counts are inconsistent/)
  })
})
