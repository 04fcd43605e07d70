import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { Ext4Error } from "../../src/domain/errors.js"
import type { TreeEntry } from "../../src/domain/tree.js"
import { expressible, quote } from "../../src/layers/ext4/debugfs-script.js"
import { Ext4Tools, makeExt4ToolsFake } from "../../src/layers/ext4/ext4-tools.js"
import { parseListings } from "../../src/layers/ext4/listing.js"
import { encodeDevice, planMetadata } from "../../src/layers/ext4/metadata.js"
import { hashSeedFor, mkfsArgs } from "../../src/layers/ext4/mkfs.js"
import type { ResolvedInode } from "../../src/layers/ext4/resolve.js"

const entry = (path: string, type: TreeEntry["type"], extra: Partial<TreeEntry> = {}): TreeEntry => ({
  path,
  type,
  mode: 0o644,
  uid: 0,
  gid: 0,
  mtime: 1_700_000_000,
  size: 0,
  xattrs: [],
  ...extra
})

const script = (inodes: ReadonlyArray<ResolvedInode>) => {
  const plan = planMetadata(inodes, "/work dir/xattrs")
  if (Either.isLeft(plan)) throw new Error(plan.left)
  return [...plan.right.chunks].join("").trimEnd().split("\n")
}

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

describe("metadata script", () => {
  it("encodes device numbers as the kernel does", () => {
    expect(encodeDevice(1, 3)).toEqual([259, 0])
    expect(encodeDevice(8, 0)).toEqual([2048, 0])
    expect(encodeDevice(300, 5)).toEqual([0, (300 << 8) | 5])
    expect(encodeDevice(4095, 1048575)).toEqual([0, 0xffffffff])
    expect(encodeDevice(0, 256)).toEqual([0, 1 << 20])
  })

  it("addresses inodes by number and skips fields mkfs already got right", () => {
    const file = entry("bin/su", "file", {
      mode: 0o4755,
      uid: 0,
      gid: 0,
      xattrs: [["security.capability", new Uint8Array([1, 2])]]
    })
    const lines = script([
      {
        ino: 12,
        entry: file,
        names: [{ path: "bin/su", parentIno: 2, name: "su" }],
        listed: { ino: 12, mode: 0o100600, uid: 0, gid: 0, name: "su", size: 0 },
        relinked: []
      }
    ])
    expect(lines).toEqual([
      "sif <12> mode 0104755",
      "sif <12> atime @1700000000",
      "sif <12> mtime @1700000000",
      "sif <12> ctime @1700000000",
      "sif <12> crtime @1700000000",
      'ea_set -f "/work dir/xattrs/0" -- <12> "security.capability"',
      "cd <2>"
    ])
  })

  it("re-creates a hard-linked device under every name, by parent inode", () => {
    const tty = entry("dev/tty1", "char", { mode: 0o620, gid: 5, devMajor: 4, devMinor: 1 })
    const lines = script([
      {
        ino: 20,
        entry: tty,
        names: [
          { path: "dev/tty1", parentIno: 13, name: "tty1" },
          { path: 'dev/alias "x"', parentIno: 13, name: 'alias "x"' }
        ],
        listed: { ino: 20, mode: 0o100600, uid: 0, gid: 0, name: "tty1", size: 0 },
        relinked: []
      }
    ])
    expect(lines).toEqual([
      'unlink "<13>/tty1"',
      'unlink "<13>/alias ""x"""',
      "sif <20> links_count 0",
      "kill_file <20>",
      "cd <13>",
      'mknod "tty1" c 0 0',
      'ln "./tty1" "<13>/alias ""x"""',
      'sif "./tty1" links_count 2',
      'sif "./tty1" mode 020620',
      'sif "./tty1" uid 0',
      'sif "./tty1" gid 5',
      'sif "./tty1" atime @1700000000',
      'sif "./tty1" mtime @1700000000',
      'sif "./tty1" ctime @1700000000',
      'sif "./tty1" crtime @1700000000',
      'sif "./tty1" block[0] 1025',
      'sif "./tty1" block[1] 0',
      "cd <2>"
    ])
  })

  it("replaces the inodes mkfs gave later names of a hard-linked symlink with links", () => {
    const link = entry("lib64", "symlink", { mode: 0o777, uid: 0, gid: 0 })
    const alias: ResolvedInode["names"][number] = { path: "usr/lib64", parentIno: 14, name: "lib64" }
    const lines = script([
      {
        ino: 12,
        entry: link,
        names: [{ path: "lib64", parentIno: 2, name: "lib64" }, alias],
        listed: { ino: 12, mode: 0o120777, uid: 0, gid: 0, name: "lib64", size: 7 },
        relinked: [{ ino: 15, name: alias }]
      }
    ])
    expect(lines.slice(0, 6)).toEqual([
      'unlink "<14>/lib64"',
      "sif <15> links_count 0",
      "kill_file <15>",
      'ln <12> "<14>/lib64"',
      "sif <12> links_count 2",
      "sif <12> atime @1700000000"
    ])
  })

  it("refuses what it cannot express or ext4 cannot hold", () => {
    const plan = (value: TreeEntry, name = "x") =>
      planMetadata(
        [{ ino: 12, entry: value, names: [{ path: value.path, parentIno: 2, name }], listed: undefined, relinked: [] }],
        "/w"
      )
    const left = (result: ReturnType<typeof plan>) => (Either.isLeft(result) ? result.left : "")
    expect(left(plan(entry("a\nb", "fifo"), "a\nb"))).toMatch(/name with a newline cannot be created/)
    expect(left(plan(entry("a", "file", { xattrs: [["user.x", new Uint8Array(5000)]] })))).toMatch(
      /more than an ext4 block/
    )
    expect(left(plan(entry("a", "file", { xattrs: [["user.\n", new Uint8Array(1)]] })))).toMatch(/cannot be written/)
    expect(left(plan(entry("a", "char", { devMajor: 4096, devMinor: 0 })))).toMatch(/does not fit ext4/)
    expect(left(plan(entry("a", "file", { uid: -1 })))).toMatch(/32-bit unsigned/)
    expect(left(plan(entry("a", "file", { mtime: 1.5 })))).toMatch(/whole seconds/)
  })
})

describe("mkfs arguments", () => {
  it("pins the profile and derives the hash seed from a given uuid", () => {
    const uuid = "4d6b3c2a-1f0e-4a9b-8c7d-6e5f4a3b2c1d"
    const args = mkfsArgs({
      output: "/o",
      sizeBytes: 1,
      treeDir: "/t",
      inodes: 100,
      label: "root",
      uuid,
      workDir: "/w",
      env: {}
    })
    expect(args).toEqual([
      "-F",
      "-q",
      "-t",
      "ext4",
      "-b",
      "4096",
      "-I",
      "256",
      "-E",
      `assume_storage_prezeroed=1,nodiscard,no_copy_xattrs,hash_seed=${hashSeedFor(uuid)}`,
      "-N",
      "100",
      "-L",
      "root",
      "-U",
      uuid,
      "-d",
      "/t",
      "/o"
    ])
    expect(hashSeedFor(uuid)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    expect(hashSeedFor(uuid)).not.toBe(uuid)
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
        fake.failBuild = new Ext4Error({ tool: "mkfs.ext4", reason: "boom", stderr: "disk full" })
        expect((yield* Effect.flip(tools.build({ tree, output, sizeBytes: 1 }))).stderr).toBe("disk full")
        expect(fake.builds).toHaveLength(2)
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    })
  )
})
