import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Ext4Error } from "../../src/domain/errors.js"
import { Ext4Tools, makeExt4ToolsFake } from "../../src/layers/ext4/ext4-tools.js"
import { crc32c } from "../../src/layers/ext4/image/crc32c.js"
import { buildExtentTree, extentsOf, treeBlocksFor, writeContiguousRoot } from "../../src/layers/ext4/image/extents.js"
import { encodeTime } from "../../src/layers/ext4/image/inode.js"
import { encodeDevice } from "../../src/layers/ext4/image/plan.js"
import { encodeXattrs } from "../../src/layers/ext4/image/xattrs.js"
import { parseListings } from "../support/debugfs/listing.js"
import { expressible, quote } from "../support/debugfs/script.js"
import { entry } from "../support/tree-entry.js"

describe("ext4 encoding", () => {
  it("computes CRC-32C", () => {
    expect(crc32c(Buffer.from("123456789")).toString(16)).toBe("e3069283")
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa)
  })

  it("encodes device numbers as the kernel does", () => {
    expect(encodeDevice(1, 3)).toEqual([259, 0])
    expect(encodeDevice(8, 0)).toEqual([2048, 0])
    expect(encodeDevice(300, 5)).toEqual([0, (300 << 8) | 5])
    expect(encodeDevice(4095, 1048575)).toEqual([0, 0xffffffff])
    expect(encodeDevice(0, 256)).toEqual([0, 1 << 20])
  })

  it("encodes times past 2038 with epoch bits and clamps what ext4 cannot hold", () => {
    expect(encodeTime(-100)).toEqual([2 ** 32 - 100, 0])
    expect(encodeTime(2 ** 31 + 1000)).toEqual([2 ** 31 + 1000, 1])
    expect(encodeTime(2 ** 33)).toEqual([0, 2])
    expect(encodeTime(-(2 ** 40))).toEqual([2 ** 31, 0])
  })

  it("splits runs into extents of at most 32768 blocks and grows the tree a level at a time", () => {
    expect(extentsOf([{ start: 100, length: 70000 }])).toEqual([
      { logical: 0, length: 32768, start: 100 },
      { logical: 32768, length: 32768, start: 32868 },
      { logical: 65536, length: 4464, start: 65636 }
    ])
    expect([4, 5, 340 * 4, 340 * 4 + 1].map(treeBlocksFor)).toEqual([0, 1, 4, 5 + 1])
    const extents = Array.from({ length: 341 }, (_, index) => ({ logical: index, length: 1, start: 1000 + 2 * index }))
    const root = Buffer.alloc(60)
    const blocks = buildExtentTree(extents, [50, 51], 0, root)
    // Header: magic, 2 entries, max 4, depth 1; then an index to each leaf block.
    expect([root.readUInt16LE(0), root.readUInt16LE(2), root.readUInt16LE(4), root.readUInt16LE(6)]).toEqual([
      0xf30a, 2, 4, 1
    ])
    expect([root.readUInt32LE(12), root.readUInt32LE(16), root.readUInt32LE(24), root.readUInt32LE(28)]).toEqual([
      0, 50, 340, 51
    ])
    expect(blocks.map((block) => [block.block, Buffer.from(block.bytes).readUInt16LE(2)])).toEqual([
      [50, 340],
      [51, 1]
    ])
  })

  it("writes a contiguous file's extent root exactly as the general tree does, or leaves it to the tree", () => {
    const cases = [
      [0, 0],
      [100, 1],
      [5000, 32768],
      [100, 70000],
      [2 ** 32 - 3, 40000],
      [2 ** 33 + 7, 4 * 32768]
    ] as const
    for (const [start, length] of cases) {
      const general = Buffer.alloc(60)
      expect(buildExtentTree(extentsOf(length === 0 ? [] : [{ start, length }]), [], 0, general)).toEqual([])
      const fast = Buffer.alloc(60)
      expect(writeContiguousRoot(new DataView(fast.buffer, fast.byteOffset, 60), start, length)).toBe(true)
      expect(fast.equals(general)).toBe(true)
    }
    // Five extents need a leaf block: nothing is written, the caller builds the tree.
    const untouched = Buffer.alloc(60)
    expect(writeContiguousRoot(new DataView(untouched.buffer, untouched.byteOffset, 60), 100, 4 * 32768 + 1)).toBe(
      false
    )
    expect(untouched.equals(Buffer.alloc(60))).toBe(true)
  })

  it("keeps small xattrs in the inode, converts POSIX ACLs and refuses what cannot fit", () => {
    const small = encodeXattrs([["user.a", Buffer.from("1")]])
    if (typeof small === "string") throw new Error(small)
    expect(small.block).toBeUndefined()
    expect(Buffer.from(small.inline!).readUInt32LE(0)).toBe(0xea020000)
    // user::rw-, user:1000:r--, group::r--, mask::r--, other::---
    const acl = Buffer.alloc(4 + 5 * 8)
    acl.writeUInt32LE(2, 0)
    const aclEntries = [
      [0x01, 6, 0xffffffff],
      [0x02, 4, 1000],
      [0x04, 4, 0xffffffff],
      [0x10, 4, 0xffffffff],
      [0x20, 0, 0xffffffff]
    ]
    aclEntries.forEach(([tag, perm, id], index) => {
      acl.writeUInt16LE(tag!, 4 + index * 8)
      acl.writeUInt16LE(perm!, 6 + index * 8)
      acl.writeUInt32LE(id!, 8 + index * 8)
    })
    const big = encodeXattrs([
      ["system.posix_acl_access", acl],
      ["user.big", Buffer.alloc(300, 1)]
    ])
    if (typeof big === "string") throw new Error(big)
    // The ACL (4 + 4 * 4 + 8 = 28 bytes on disk) fits the inode; the 300-byte value goes to the block.
    const inline = Buffer.from(big.inline!)
    expect([inline[4], inline[5], inline.readUInt32LE(12)]).toEqual([0, 2, 28])
    const block = Buffer.from(big.block!)
    expect([block.readUInt32LE(0), block[32], block[33], block.readUInt32LE(40)]).toEqual([0xea020000, 3, 1, 300])
    expect(encodeXattrs([["system.posix_acl_default", Buffer.from([1, 0, 0, 0])]])).toMatch(/not a valid POSIX ACL/)
    expect(encodeXattrs([["user.x", Buffer.alloc(5000)]])).toMatch(/more than one 4096-byte block/)
  })
})

describe("debugfs quoting", () => {
  it("doubles quotes inside double quotes and leaves everything else literal", () => {
    expect(quote('a"b')).toBe('"a""b"')
    expect(quote('""')).toBe('""""""')
    expect(quote("back\\slash #x -y <12>")).toBe('"back\\slash #x -y <12>"')
    expect(expressible("tab\there ünï")).toBe(true)
    expect(expressible("new\nline")).toBe(false)
    expect(expressible("carriage\rreturn")).toBe(false)
  })
})

describe("parseListings", () => {
  it("reads records by their slashes, so names may hold newlines and look like echoes", () => {
    const tricky = "x\ndebugfs: ls -p -- <13>\n"
    const output = [
      "debugfs 1.47.0 (5-Feb-2023)",
      "debugfs: ls -p -- <2>",
      "/2/040755/0/0/.//",
      "/2/040755/0/0/..//",
      "/0/000000/0/0//0/",
      `/12/0100600/-2/100000/${tricky}/7/`,
      "/13/040700/0/0/sub//",
      "",
      "debugfs: ls -p -- <13>",
      "<13>: File not found by ext2_lookup ",
      "debugfs: ls -p -- <14>",
      ""
    ].join("\n")
    const listings = parseListings(output, ["<2>", "<13>", "<14>"])
    expect(listings).toEqual([
      {
        _tag: "Listed",
        entries: [
          { ino: 12, mode: 0o100600, uid: 4294967294, gid: 100000, name: tricky, size: 7 },
          { ino: 13, mode: 0o40700, uid: 0, gid: 0, name: "sub", size: undefined }
        ]
      },
      { _tag: "Failed", message: "<13>: File not found by ext2_lookup" },
      { _tag: "Listed", entries: [] }
    ])
    expect(parseListings("debugfs: Bad magic number\n", ["<2>"])).toMatch(/no output for the first listing/)
  })
})

describe("Ext4Tools.layerTest", () => {
  it.effect("records calls, writes a marker image and checks only what it built", () =>
    Effect.gen(function* () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ext4-fake-"))
      try {
        const fake = makeExt4ToolsFake()
        const tools = yield* Effect.provide(Ext4Tools, Ext4Tools.layerTest(fake))
        const output = path.join(dir, "rootfs.ext4")
        const tree = { dir: "/nowhere", entries: [entry("", "directory")] }
        yield* tools.build({ tree, output, sizeBytes: 1 << 20, inodes: 64, label: "x" })
        expect(fake.builds).toHaveLength(1)
        expect(fake.builds[0]!.output).toBe(output)
        expect(fs.statSync(output).size).toBe(1 << 20)
        yield* tools.check(output)
        expect(fake.checks).toEqual([output])
        fs.writeFileSync(path.join(dir, "other"), "not an image")
        const wrong = yield* Effect.flip(tools.check(path.join(dir, "other")))
        expect(wrong.tool).toBe("e2fsck")
        expect((yield* Effect.flip(tools.check(path.join(dir, "missing")))).tool).toBe("e2fsck")
        // A draft: contents counted, the image written at the size chosen, removed if its scope fails.
        const drafted = path.join(dir, "drafted.ext4")
        yield* Effect.scoped(
          Effect.gen(function* () {
            const draft = yield* tools.openDraft({ output: drafted })
            const writer = draft.contents.begin(5000)
            writer.write(new Uint8Array(5000))
            const content = writer.finish()
            const image = yield* draft.plan([
              entry("", "directory"),
              { ...entry("f", "file", { size: 5000 }), content }
            ])
            expect(image.requiredBytes).toBe(2 ** 20 + 8192)
            expect(image.misfit(2 ** 20)).toMatch(/needs 1056768 bytes/)
            yield* image.write({ sizeBytes: 2 ** 21, label: "d" })
          })
        )
        expect(fake.images.at(-1)).toEqual({
          output: drafted,
          sizeBytes: 2 ** 21,
          inodes: undefined,
          label: "d",
          entries: 2
        })
        yield* tools.check(drafted)
        fake.failBuild = new Ext4Error({ tool: "ext4 writer", reason: "boom", stderr: "disk full" })
        expect((yield* Effect.flip(tools.build({ tree, output, sizeBytes: 1 }))).stderr).toBe("disk full")
        expect(fake.builds).toHaveLength(2)
        const failed = yield* Effect.exit(
          Effect.scoped(
            Effect.gen(function* () {
              const draft = yield* tools.openDraft({ output: drafted })
              const image = yield* draft.plan([entry("", "directory")])
              yield* image.write({ sizeBytes: 2 ** 21 })
            })
          )
        )
        expect(failed._tag).toBe("Failure")
        expect(fs.existsSync(drafted)).toBe(false)
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    })
  )
})
