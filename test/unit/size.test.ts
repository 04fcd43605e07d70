import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import type { TreeEntry } from "../../src/domain/tree.js"
import type { PlannedImage } from "../../src/layers/ext4/ext4-tools.js"
import { reservedBlocksFor } from "../../src/layers/ext4/image/allocator.js"
import { ImageDraftFile } from "../../src/layers/ext4/image/draft.js"
import { FileBlocks } from "../../src/layers/ext4/image/draft-contents.js"
import { defaultInodesFor, geometryFor } from "../../src/layers/ext4/image/layout.js"
import { chooseImageSize, parseSize } from "../../src/pipelines/pull/size.js"
import { entry } from "../support/tree-entry.js"

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

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

/** A draft in a temp file whose files are allocated, not written: sizing only looks at blocks. */
const planOf = (entries: ReadonlyArray<TreeEntry>) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "size-test-"))
  const draft = ImageDraftFile.open(path.join(dir, "image.ext4"), { uuid: "4d6b3c2a-1f0e-4a9b-8c7d-6e5f4a3b2c1d" })
  try {
    const withContent = entries.map((item) =>
      item.type === "file" && item.hardlinkTo === undefined
        ? { ...item, content: FileBlocks.of(item.size, draft.allocator.allocate(Math.ceil(item.size / 4096))) }
        : item
    )
    const plan = draft.plan(withContent, 1_700_000_000)
    if (typeof plan === "string") throw new Error(plan)
    return plan
  } finally {
    // Nothing is written, so no writeback holds the descriptor: the close finishes at once.
    void draft.close().finally(() => fs.rmSync(dir, { recursive: true, force: true }))
  }
}

/** `chooseImageSize` needs only the sizing half of a planned image. */
const planned = (entries: ReadonlyArray<TreeEntry>): PlannedImage => {
  const plan = planOf(entries)
  return {
    requiredBytes: plan.requiredBytes,
    usedInodes: plan.usedInodes,
    misfit: (sizeBytes, inodes) => {
      const geometry = plan.geometry(sizeBytes, inodes)
      return typeof geometry === "string" ? geometry : undefined
    },
    write: () => Effect.die("not in this test")
  }
}

describe("geometryFor", () => {
  const reserve = reservedBlocksFor(undefined)

  it("gives a 1 GiB image mkfs's shape: 8 groups, 65536 inodes, a 32 MiB journal", () => {
    expect(geometryFor(262144, defaultInodesFor(262144), reserve)).toEqual({
      blocks: 262144,
      groups: 8,
      inodesPerGroup: 8192,
      inodes: 65536,
      journalBlocks: 8192,
      descriptorBlocks: 1,
      inodeTableBlocks: 512
    })
  })

  it("drops a trailing group too small to be worth its metadata, as mkfs does", () => {
    expect(geometryFor(32768 + 40, 1000, reserve)).toMatchObject({ blocks: 32768, groups: 1 })
    expect(geometryFor(32768 + 2048, 1000, reserve)).toMatchObject({ blocks: 34816, groups: 2 })
  })

  it("refuses sizes too small for a filesystem, or beyond the descriptors kept room for", () => {
    expect(geometryFor(1, 16, reserve)).toMatch(/too small/)
    expect(geometryFor((2 ** 30 / 4096) * 1024 * 2, 16, reserve)).toMatch(/more group descriptor blocks/)
    expect(geometryFor(2 ** 32, 16, reservedBlocksFor(2 ** 33))).toMatch(/16 TiB/)
  })
})

describe("required size", () => {
  it("grows with contents, inodes, directories, long symlinks and xattr blocks", () => {
    // 10 MiB of contents: past the sizes where the smallest filesystem or a first journal dominates.
    const baseTree = [...rootOnly, entry("base", "file", { size: 10 * MiB })]
    const base = planOf(baseTree).requiredBytes
    const grows = (entries: ReadonlyArray<TreeEntry>) => planOf([...baseTree, ...entries]).requiredBytes - base
    expect(grows([entry("f", "file", { size: 10 * MiB })])).toBeGreaterThanOrEqual(10 * MiB)
    // Each takes a block; the inode table grows with the size too, in steps.
    const many = (make: (index: number) => TreeEntry) => grows(Array.from({ length: 64 }, (_, index) => make(index)))
    const blocks64 = 64 * 4096
    expect(many((i) => entry(`l${i}`, "symlink", { linkTarget: "x".repeat(100) }))).toBeGreaterThanOrEqual(blocks64)
    expect(many((i) => entry(`s${i}`, "symlink", { linkTarget: "short" }))).toBeLessThan(blocks64 / 4)
    const xattrs: TreeEntry["xattrs"] = [["user.big", new Uint8Array(2000)]]
    expect(many((i) => entry(`x${i}`, "fifo", { xattrs }))).toBeGreaterThanOrEqual(blocks64)
    const names = Array.from({ length: 2000 }, (_, index) => entry(`d/${"n".repeat(200)}${index}`, "fifo"))
    // 2000 entries of 8 + 204 bytes fill 2000 / 19 = 106 blocks of 4084 usable bytes.
    expect(grows([entry("d", "directory"), ...names])).toBeGreaterThanOrEqual(106 * 4096)
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
      const small = yield* chooseImageSize({ image: planned(rootOnly), entryCount: 1 })
      expect(small.sizeBytes).toBe(GiB)
      const image = planned([...rootOnly, entry("big", "file", { size: 3 * GiB })])
      const large = yield* chooseImageSize({ image, entryCount: 2 })
      expect(large.sizeBytes % 4096).toBe(0)
      expect(large.sizeBytes).toBeGreaterThanOrEqual(image.requiredBytes * 1.25)
      expect(large.sizeBytes).toBeLessThan(image.requiredBytes * 1.25 + 64 * MiB)
      expect(image.misfit(large.sizeBytes)).toBeUndefined()
    })
  )

  it.effect("keeps a requested size that fits", () =>
    Effect.gen(function* () {
      const image = planned(tree)
      expect(yield* chooseImageSize({ image, entryCount: tree.length, requested: 2 * GiB })).toEqual({
        sizeBytes: 2 * GiB
      })
      const exact = yield* chooseImageSize({ image, entryCount: tree.length, requested: image.requiredBytes })
      expect(exact.sizeBytes).toBe(image.requiredBytes)
    })
  )

  it.effect("refuses a requested size below the requirement with both figures", () =>
    Effect.gen(function* () {
      const image = planned(tree)
      const required = image.requiredBytes
      const error = yield* Effect.flip(chooseImageSize({ image, entryCount: tree.length, requested: required - 4096 }))
      expect(error._tag).toBe("SizeTooSmall")
      expect(error.requestedBytes).toBe(required - 4096)
      expect(error.requiredBytes).toBe(required)
      expect(error.message).toMatch(/is too small: the image holds 102 entries in \d+ inodes, and the tree/)
      expect(
        Exit.isFailure(yield* Effect.exit(chooseImageSize({ image, entryCount: tree.length, requested: 1 })))
      ).toBe(true)
    })
  )

  it.effect("gives enough inodes for trees of many tiny files", () =>
    Effect.gen(function* () {
      const files = Array.from({ length: 200_000 }, (_, index) => entry(`f${index}`, "file", { size: 100 }))
      const plan = planOf([...rootOnly, ...files])
      const chosen = yield* chooseImageSize({ image: planned([...rootOnly, ...files]), entryCount: files.length + 1 })
      // One inode per 16 KiB would give 65536 for this 1 GiB image.
      const geometry = plan.geometry(chosen.sizeBytes)
      expect(typeof geometry === "string" ? geometry : geometry.inodes).toBeGreaterThanOrEqual(
        Math.ceil(200_011 * 1.25)
      )
    })
  )
})
