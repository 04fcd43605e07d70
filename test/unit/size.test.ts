import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import type { TreeEntry } from "../../src/domain/tree.js"
import { layout } from "../../src/layers/ext4/geometry.js"
import { chooseImageSize, parseSize, requiredBytes, treeUsage } from "../../src/pipelines/pull/size.js"

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

const entry = (path: string, type: TreeEntry["type"], extra: Partial<TreeEntry> = {}): TreeEntry => ({
  path,
  type,
  mode: type === "directory" ? 0o755 : 0o644,
  uid: 0,
  gid: 0,
  mtime: 1_700_000_000,
  size: 0,
  xattrs: [],
  ...extra
})

const rootOnly = [entry("", "directory")]

describe("parseSize", () => {
  const accepted: ReadonlyArray<readonly [string, number]> = [
    ["2G", 2 * GiB],
    ["2g", 2 * GiB],
    ["2GiB", 2 * GiB],
    ["2gib", 2 * GiB],
    ["2GB", 2 * GiB],
    ["1500M", 1500 * MiB],
    ["1500MiB", 1500 * MiB],
    ["512K", 512 * KiB],
    ["512kb", 512 * KiB],
    ["1T", 1024 * GiB],
    ["1048576", 1048576],
    ["1048576B", 1048576],
    ["  3G  ", 3 * GiB],
    ["3 G", 3 * GiB],
    ["+4M", 4 * MiB],
    ["007M", 7 * MiB],
    ["1", 1]
  ]
  for (const [input, bytes] of accepted) {
    it.effect(`accepts ${JSON.stringify(input)}`, () =>
      Effect.gen(function* () {
        expect(yield* parseSize(input)).toBe(bytes)
      })
    )
  }

  const rejected: ReadonlyArray<readonly [string, RegExp]> = [
    ["", /empty/],
    ["   ", /empty/],
    ["0", /greater than zero/],
    ["0G", /greater than zero/],
    ["-1G", /negative/],
    ["-5", /negative/],
    ["1.5G", /fractions are not supported; use 1536M/],
    ["0.5K", /fractions are not supported; use 512 bytes/],
    ["1.1G", /^fractions are not supported$/],
    ["2X", /expected a number/],
    ["G", /expected a number/],
    ["2GG", /expected a number/],
    ["2 GiB extra", /expected a number/],
    ["5iB", /iB needs a unit/],
    ["1e9", /expected a number/],
    ["0x100", /expected a number/],
    ["99999999T", /too large/]
  ]
  for (const [input, reason] of rejected) {
    it.effect(`rejects ${JSON.stringify(input)}`, () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(parseSize(input))
        expect(error._tag).toBe("InvalidSize")
        expect(error.input).toBe(input)
        expect(error.reason).toMatch(reason)
      })
    )
  }
})

describe("layout", () => {
  // Figures read back with dumpe2fs from images made with banger's mkfs profile.
  it("matches mkfs for a 1 GiB image", () => {
    const geometry = layout(GiB)!
    expect(geometry).toMatchObject({ blocks: 262144, groups: 8, inodes: 65536, reservedGdtBlocks: 127 })
    expect(geometry.journalBlocks).toBe(8192)
    expect(geometry.metadataBlocks).toBe(5 * (1 + 1 + 127) + 8 * (2 + 512))
  })

  it("drops a trailing group too small for its own metadata, as mkfs does", () => {
    const full = layout(128 * MiB)!
    const withSliver = layout(128 * MiB + 40 * 4096)!
    expect(withSliver.blocks).toBe(full.blocks)
    expect(withSliver.groups).toBe(1)
    expect(layout(128 * MiB + 8 * MiB)!.groups).toBe(2)
  })

  it("refuses sizes mkfs refuses", () => {
    expect(layout(4096)).toBeUndefined()
    expect(layout(64 * KiB, 1000)).toBeUndefined()
  })
})

describe("requiredBytes", () => {
  it("grows with contents, inodes, directories, long symlinks and xattr blocks", () => {
    const base = requiredBytes(rootOnly)
    expect(base % 4096).toBe(0)
    const withFile = [...rootOnly, entry("big", "file", { size: 100 * MiB })]
    expect(requiredBytes(withFile)).toBeGreaterThanOrEqual(base + 100 * MiB)
    expect(treeUsage(withFile).blocks - treeUsage(rootOnly).blocks).toBe(25600)

    const usage = (entries: ReadonlyArray<TreeEntry>) => treeUsage([...rootOnly, ...entries])
    const empty = usage([])
    // A file of one byte still takes a whole block, an empty one none.
    expect(usage([entry("a", "file", { size: 1 })]).blocks - empty.blocks).toBe(1)
    expect(usage([entry("a", "file", { size: 0 })]).blocks - empty.blocks).toBe(0)
    expect(usage([entry("a", "file", { size: 4097 })]).blocks - empty.blocks).toBe(2)
    // Symlinks of 60 bytes or more leave the inode for a block.
    expect(usage([entry("l", "symlink", { linkTarget: "x".repeat(59) })]).blocks).toBe(empty.blocks)
    expect(usage([entry("l", "symlink", { linkTarget: "x".repeat(60) })]).blocks).toBe(empty.blocks + 1)
    expect(usage([entry("l", "symlink", { linkTarget: "文".repeat(20) })]).blocks).toBe(empty.blocks + 1)
    // xattrs: a capability fits in the inode, a big value needs a block.
    const cap: TreeEntry["xattrs"] = [["security.capability", new Uint8Array(20)]]
    expect(usage([entry("a", "file", { xattrs: cap })]).blocks).toBe(empty.blocks)
    const big: TreeEntry["xattrs"] = [["user.big", new Uint8Array(100)]]
    expect(usage([entry("a", "file", { xattrs: big })]).blocks).toBe(empty.blocks + 1)
    // Every entry but hard links and the root costs an inode; devices cost no blocks.
    const devices = usage([
      entry("a", "file", { size: 10 }),
      entry("b", "file", { size: 10, hardlinkTo: "a" }),
      entry("c", "char", { devMajor: 1, devMinor: 3 })
    ])
    expect(devices.inodes).toBe(empty.inodes + 2)
    expect(devices.blocks).toBe(empty.blocks + 1)
  })

  it("counts directory blocks from the names they hold", () => {
    const names = Array.from({ length: 2000 }, (_, index) => entry(`d/${"n".repeat(200)}${index}`, "fifo"))
    const usage = treeUsage([...rootOnly, entry("d", "directory"), ...names])
    // 2000 entries of 8 + 204 bytes need at least 104 blocks of 4084 usable bytes.
    expect(usage.blocks - treeUsage([...rootOnly, entry("d", "directory")]).blocks).toBeGreaterThanOrEqual(104)
  })
})

describe("chooseImageSize", () => {
  const tree = [
    ...rootOnly,
    entry("usr", "directory"),
    ...Array.from({ length: 100 }, (_, index) => entry(`usr/f${index}`, "file", { size: 3 * MiB }))
  ]

  it.effect("defaults to a quarter more than required, at least 1 GiB, in whole blocks", () =>
    Effect.gen(function* () {
      const small = yield* chooseImageSize({ entries: rootOnly })
      expect(small.sizeBytes).toBe(GiB)
      expect(small.inodes).toBe(65536)
      const large = yield* chooseImageSize({ entries: [...rootOnly, entry("big", "file", { size: 3 * GiB })] })
      const required = requiredBytes([...rootOnly, entry("big", "file", { size: 3 * GiB })])
      expect(large.sizeBytes % 4096).toBe(0)
      expect(large.sizeBytes).toBeGreaterThanOrEqual(required * 1.25)
      expect(large.sizeBytes).toBeLessThan(required * 1.25 + 64 * MiB)
    })
  )

  it.effect("keeps a requested size that fits", () =>
    Effect.gen(function* () {
      const required = requiredBytes(tree)
      expect(yield* chooseImageSize({ entries: tree, requested: 2 * GiB })).toEqual({
        sizeBytes: 2 * GiB,
        inodes: 131072
      })
      expect((yield* chooseImageSize({ entries: tree, requested: required })).sizeBytes).toBe(required)
    })
  )

  it.effect("refuses a requested size below the requirement with both figures", () =>
    Effect.gen(function* () {
      const required = requiredBytes(tree)
      const error = yield* Effect.flip(chooseImageSize({ entries: tree, requested: required - 4096 }))
      expect(error._tag).toBe("SizeTooSmall")
      expect(error.requestedBytes).toBe(required - 4096)
      expect(error.requiredBytes).toBe(required)
      expect(error.message).toMatch(/is too small: the image holds 102 entries/)
      expect(Exit.isFailure(yield* Effect.exit(chooseImageSize({ entries: tree, requested: 1 })))).toBe(true)
    })
  )

  it.effect("gives enough inodes for trees of many tiny files", () =>
    Effect.gen(function* () {
      const files = Array.from({ length: 200_000 }, (_, index) => entry(`f${index}`, "file", { size: 100 }))
      const chosen = yield* chooseImageSize({ entries: [...rootOnly, ...files] })
      // mkfs's one inode per 16 KiB would give 65536 for this 1 GiB image.
      expect(chosen.inodes).toBeGreaterThanOrEqual(Math.ceil(200_011 * 1.25))
      expect(layout(chosen.sizeBytes, chosen.inodes)!.inodes).toBeGreaterThanOrEqual(chosen.inodes)
    })
  )
})
