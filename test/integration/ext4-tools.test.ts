import { execFileSync, spawnSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { afterAll, beforeAll } from "vitest"
import type { FlatTree, TreeEntry } from "../../src/domain/tree.js"
import { copyTreeInto } from "../../src/layers/ext4/build.js"
import { Ext4Tools } from "../../src/layers/ext4/ext4-tools.js"
import type { BlockRun } from "../../src/layers/ext4/image/allocator.js"
import { ImageDraftFile } from "../../src/layers/ext4/image/draft.js"
import { FileBlocks } from "../../src/layers/ext4/image/draft-contents.js"
import { chooseImageSize } from "../../src/pipelines/pull/size.js"
import {
  compareImage,
  type ImageEntry,
  inspectImage,
  readFileFromImage,
  readFilesFromImage
} from "../support/ext4-inspect.js"
import { contentOf, type TreeSpec, writeTree } from "../support/ext4-tree.js"

const ToolsLive = Ext4Tools.layer.pipe(Layer.provideMerge(NodeContext.layer))

let root: string
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "ext4-tools-test-"))
})
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true })
})

let counter = 0
const scratch = (name: string) => {
  const dir = path.join(root, `${counter++}-${name}`)
  fs.mkdirSync(dir)
  return dir
}

const MiB = 2 ** 20

const treeRoot: TreeEntry = {
  path: "",
  type: "directory",
  mode: 0o755,
  uid: 0,
  gid: 0,
  mtime: 1_600_000_000,
  size: 0,
  xattrs: []
}

/**
 * A POSIX ACL as the xattr carries it: version 2, then (tag, permissions, id) per entry. ext4
 * keeps no id for the owner, group, mask and other tags; debugfs reads them back as 0 (the
 * kernel as -1), so that is what these give them.
 */
const posixAcl = (entries: ReadonlyArray<readonly [tag: number, perm: number, id?: number]>) => {
  const value = Buffer.alloc(4 + entries.length * 8)
  value.writeUInt32LE(2, 0)
  entries.forEach(([tag, perm, id], index) => {
    value.writeUInt16LE(tag, 4 + index * 8)
    value.writeUInt16LE(perm, 6 + index * 8)
    value.writeUInt32LE(id ?? 0, 8 + index * 8)
  })
  return value
}

const capability = Buffer.from("0100000200200000000000000000000000000000", "hex")
const binary = Buffer.from(Array.from({ length: 256 }, (_, index) => index))
const long255 = "n".repeat(255)
const unicode255 = "文".repeat(85)
const longTarget = `/usr/lib/x86_64-linux-gnu/${"very-long-directory-name/".repeat(4)}libsomething.so.1.2.3`

/** Every kind of entry, mode, id and name the flattener can hand over. */
const everything: ReadonlyArray<TreeSpec> = [
  { path: "", type: "directory", mode: 0o755, mtime: 1_600_000_000 },
  { path: "bin", type: "directory", mode: 0o755, mtime: 1_600_000_001 },
  { path: "bin/su", type: "file", mode: 0o4755, content: binary, xattrs: [["security.capability", capability]] },
  { path: "bin/wall", type: "file", mode: 0o2755, gid: 5, content: "#!/bin/sh\n" },
  { path: "tmp", type: "directory", mode: 0o1777, mtime: 1 },
  { path: "var", type: "directory", mode: 0o755 },
  {
    path: "var/mail",
    type: "directory",
    mode: 0o2775,
    gid: 8,
    xattrs: [
      ["user.dir", "on a directory"],
      [
        "system.posix_acl_access",
        posixAcl([
          [0x01, 7],
          [0x02, 5, 1000],
          [0x04, 5],
          [0x10, 7],
          [0x20, 0]
        ])
      ],
      [
        "system.posix_acl_default",
        posixAcl([
          [0x01, 7],
          [0x04, 5],
          [0x08, 7, 8],
          [0x10, 7],
          [0x20, 5]
        ])
      ]
    ]
  },
  { path: "etc", type: "directory", mode: 0o755, uid: 1000, gid: 1000 },
  { path: "etc/empty", type: "file", mode: 0o644, uid: 65534, gid: 65534 },
  {
    path: "etc/sparse",
    type: "file",
    mode: 0o640,
    uid: 100000,
    gid: 100001,
    content: {
      size: 3 * MiB + 17,
      chunks: [
        [0, Buffer.from("head")],
        [2 * MiB, Buffer.from("middle")]
      ]
    }
  },
  { path: "etc/random", type: "file", mode: 0o600, uid: 4294967294, gid: 4294967293, content: randomBytes(200_000) },
  { path: "etc/old", type: "file", mode: 0o444, mtime: -100, content: "before 1970" },
  { path: "etc/future", type: "file", mode: 0o444, mtime: 2 ** 31 + 1000, content: "after 2038" },
  {
    path: "etc/xattrs",
    type: "file",
    mode: 0o644,
    content: "x",
    xattrs: [
      ["user.comment", "hello"],
      ["user.binary", Buffer.from([0, 1, 2, 0, 255, 10, 13, 34])],
      ["user.empty", ""],
      ["trusted.big", Buffer.alloc(1500, 7)],
      ["security.selinux", "system_u:object_r:etc_t:s0\0"]
    ]
  },
  { path: "lib64", type: "symlink", mode: 0o777, target: "usr/lib" },
  { path: "etc/long-link", type: "symlink", mode: 0o777, uid: 1000, target: longTarget },
  { path: "etc/link59", type: "symlink", mode: 0o777, target: `/${"a".repeat(58)}` },
  { path: "etc/link60", type: "symlink", mode: 0o777, target: `/${"b".repeat(59)}` },
  { path: "etc/dangling", type: "symlink", mode: 0o777, target: "/nonexistent/target" },
  { path: "etc/absolute", type: "symlink", mode: 0o777, target: "/etc/random", mtime: 1_234_567_890 },
  { path: "etc/odd-mode-link", type: "symlink", mode: 0o755, target: "empty" },
  {
    path: "etc/long-link-alias",
    type: "symlink",
    mode: 0o777,
    uid: 1000,
    target: longTarget,
    hardlinkTo: "etc/long-link"
  },
  { path: "etc/lib64-alias", type: "symlink", mode: 0o777, target: "usr/lib", hardlinkTo: "lib64" },
  { path: "usr", type: "directory", mode: 0o755 },
  { path: "usr/lib", type: "directory", mode: 0o755 },
  { path: "usr/bin", type: "directory", mode: 0o755 },
  { path: "usr/bin/perl", type: "file", mode: 0o755, content: "perl binary" },
  { path: "usr/bin/perl5.36", type: "file", mode: 0o755, content: "perl binary", hardlinkTo: "usr/bin/perl" },
  { path: "usr/lib/perl-alias", type: "file", mode: 0o755, content: "perl binary", hardlinkTo: "usr/bin/perl" },
  { path: "dev", type: "directory", mode: 0o755 },
  { path: "dev/null", type: "char", mode: 0o666, major: 1, minor: 3 },
  { path: "dev/sda", type: "block", mode: 0o660, gid: 6, major: 8, minor: 0 },
  { path: "dev/wide", type: "char", mode: 0o600, major: 4095, minor: 1048575 },
  { path: "dev/major300", type: "block", mode: 0o640, major: 300, minor: 5, xattrs: [["user.dev", "node"]] },
  { path: "dev/initctl", type: "fifo", mode: 0o600, mtime: 1_500_000_000 },
  { path: "dev/tty1", type: "char", mode: 0o620, gid: 5, major: 4, minor: 1 },
  { path: "dev/console-alias", type: "char", mode: 0o620, gid: 5, major: 4, minor: 1, hardlinkTo: "dev/tty1" },
  { path: "names", type: "directory", mode: 0o755 },
  { path: "names/ünïcödé-文件", type: "file", mode: 0o644, content: "unicode" },
  { path: `names/${long255}`, type: "file", mode: 0o644, content: "long" },
  { path: `names/${unicode255}`, type: "directory", mode: 0o700 },
  { path: `names/${unicode255}/inside`, type: "file", mode: 0o644, content: "deep" },
  { path: "names/with space", type: "file", mode: 0o644, content: "space" },
  { path: 'names/quo"te', type: "file", mode: 0o644, content: "double" },
  { path: 'names/""', type: "file", mode: 0o644, content: "two quotes" },
  { path: "names/single'quote", type: "file", mode: 0o644, content: "single" },
  { path: "names/back\\slash", type: "file", mode: 0o644, content: "backslash" },
  { path: "names/#hash", type: "file", mode: 0o644, content: "hash" },
  { path: "names/-leading-dash", type: "file", mode: 0o644, content: "dash" },
  { path: "names/<12>", type: "file", mode: 0o644, content: "looks like an inode" },
  { path: "names/tab\there", type: "file", mode: 0o644, content: "tab" },
  { path: "names/new\nline", type: "file", mode: 0o644, content: "newline" },
  { path: "names/dir\nwith newline", type: "directory", mode: 0o750, uid: 3 },
  { path: "names/dir\nwith newline/child", type: "file", mode: 0o600, uid: 4, content: "below a newline" },
  { path: "names/ -spaced- ", type: "fifo", mode: 0o644 },
  { path: 'names/dev "quoted" <2>', type: "char", mode: 0o600, major: 10, minor: 200 }
]

const expectMatches = (tree: FlatTree, image: ReadonlyArray<ImageEntry>) => {
  expect(compareImage(tree.entries, image)).toEqual([])
  expect(image.map((entry) => entry.path).sort()).toEqual(
    [...tree.entries.map((entry) => entry.path), "lost+found"].sort()
  )
}

const expectContents = (
  image: string,
  tree: FlatTree,
  specs: ReadonlyArray<TreeSpec>,
  entries: ReadonlyArray<ImageEntry>
) =>
  Effect.gen(function* () {
    const files = entries.filter((entry) => entry.type === "file")
    const contents = yield* readFilesFromImage(image, files)
    for (const spec of specs.filter((candidate) => candidate.type === "file")) {
      expect(contents.get(spec.path)!.equals(contentOf(spec)), spec.path).toBe(true)
    }
    expect(tree.entries.filter((entry) => entry.type === "file").length).toBe(files.length)
  })

const sha256 = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex")

describe("Ext4Tools", () => {
  it.live("builds an image whose every inode matches the entries exactly", () =>
    Effect.gen(function* () {
      const dir = scratch("everything")
      const tree = writeTree(path.join(dir, "tree"), everything)
      const output = path.join(dir, "rootfs.ext4")
      const tools = yield* Ext4Tools
      yield* tools.build({ tree, output, sizeBytes: 64 * MiB, label: "banger-root" })
      yield* tools.check(output)
      expect(fs.statSync(output).size).toBe(64 * MiB)
      expect(fs.statSync(output).blocks * 512).toBeLessThan(16 * MiB)
      const entries = yield* inspectImage(output)
      expectMatches(tree, entries)
      yield* expectContents(output, tree, everything, entries)
      // The comparison notices each kind of difference.
      const edited = tree.entries.map((entry) => {
        if (entry.path === "etc/random") return { ...entry, uid: 1 }
        if (entry.path === "bin/su") return { ...entry, xattrs: [] }
        if (entry.path === "dev/sda") return { ...entry, devMinor: 1 }
        if (entry.path === "usr/lib/perl-alias") return { ...entry, hardlinkTo: undefined }
        return entry
      })
      expect(compareImage(edited, entries)).toEqual([
        '"bin/su": xattrs is "security.capability=0100000200200000000000000000000000000000", expected ""',
        '"etc/random": uid is 4294967294, expected 1',
        '"usr/bin/perl": link count is 3, expected 2',
        '"usr/bin/perl5.36": link count is 3, expected 2',
        '"usr/lib/perl-alias": link count is 3, expected 1',
        '"dev/sda": device is "8:0", expected "8:1"',
        `"usr/lib/perl-alias": shares inode ${entries.find((entry) => entry.path === "usr/bin/perl")!.inode} with "usr/bin/perl"`
      ])
      expect(compareImage(tree.entries.slice(0, -1), entries)).toEqual([
        `${JSON.stringify(tree.entries.at(-1)!.path)}: in the image but not in the entries`
      ])
      expect((yield* readFileFromImage(output, "names/with space")).toString()).toBe("space")
      expect((yield* readFileFromImage(output, "names/new\nline")).toString()).toBe("newline")
      const lostFound = entries.find((entry) => entry.path === "lost+found")!
      expect([lostFound.type, lostFound.mode, lostFound.uid]).toEqual(["directory", 0o700, 0])
      const label = execFileSync("dumpe2fs", ["-h", output], { stdio: ["ignore", "pipe", "ignore"] }).toString()
      expect(label).toMatch(/Filesystem volume name:\s+banger-root\n/)
      expect(fs.readdirSync(dir).sort()).toEqual(["rootfs.ext4", "tree"])
    }).pipe(Effect.provide(ToolsLive))
  )

  it.live("gives byte-identical images for the same tree, uuid and timestamp", () =>
    Effect.gen(function* () {
      const dir = scratch("reproducible")
      const tree = writeTree(path.join(dir, "tree"), everything)
      const tools = yield* Ext4Tools
      const uuid = "4d6b3c2a-1f0e-4a9b-8c7d-6e5f4a3b2c1d"
      for (const name of ["a.ext4", "b.ext4"]) {
        yield* tools.build({ tree, output: path.join(dir, name), sizeBytes: 48 * MiB, uuid })
      }
      expect(sha256(path.join(dir, "a.ext4"))).toBe(sha256(path.join(dir, "b.ext4")))
      const header = execFileSync("dumpe2fs", ["-h", path.join(dir, "a.ext4")], { stdio: ["ignore", "pipe", "ignore"] })
      expect(header.toString()).toContain(`Filesystem UUID:          ${uuid}`)
      // The default timestamp is the newest mtime not in the future; lost+found, made by mkfs, carries it.
      const now = Date.now() / 1000
      const newest = Math.max(...tree.entries.map((entry) => entry.mtime).filter((mtime) => mtime <= now))
      expect(newest).toBe(1_700_000_000)
      const lostFound = (yield* inspectImage(path.join(dir, "a.ext4"))).find((entry) => entry.path === "lost+found")!
      expect(lostFound.mtime).toBe(newest)
    }).pipe(Effect.provide(ToolsLive))
  )

  it.live("builds the same exact ownership when run by an unprivileged user", () =>
    Effect.gen(function* () {
      if (process.getuid?.() !== 0) return yield* Effect.die("this test needs root to switch to the nobody user")
      const dir = scratch("nobody")
      fs.chmodSync(root, 0o755)
      fs.chmodSync(dir, 0o755)
      const tree = writeTree(path.join(dir, "tree"), everything)
      const out = path.join(dir, "out")
      fs.mkdirSync(out)
      execFileSync("chown", ["-R", "65534:65534", tree.dir, out])
      const bundle = path.join(dir, "build-as-user.cjs")
      execFileSync(
        path.join("node_modules", ".bin", "esbuild"),
        [
          "test/support/ext4-build-runner.ts",
          "--bundle",
          "--platform=node",
          "--format=cjs",
          `--outfile=${bundle}`,
          "--log-level=warning"
        ],
        { stdio: "inherit" }
      )
      const request = path.join(dir, "request.json")
      const output = path.join(out, "rootfs.ext4")
      fs.writeFileSync(
        request,
        JSON.stringify({
          tree: {
            dir: tree.dir,
            entries: tree.entries.map((entry) => ({
              ...entry,
              xattrs: entry.xattrs.map(([name, value]) => [name, Buffer.from(value).toString("base64")])
            }))
          },
          output,
          sizeBytes: 64 * MiB
        })
      )
      fs.chmodSync(request, 0o644)
      const run = spawnSync(
        "setpriv",
        ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, bundle, request],
        { encoding: "utf8", env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/nonexistent" } }
      )
      expect(run.stderr + run.stdout).toBe("built as 65534\n")
      expect(run.status).toBe(0)
      expect(fs.statSync(output).uid).toBe(65534)
      const tools = yield* Ext4Tools
      yield* tools.check(output)
      const entries = yield* inspectImage(output)
      expectMatches(tree, entries)
      yield* expectContents(output, tree, everything, entries)
    }).pipe(Effect.provide(ToolsLive))
  )

  it.live("lays out the tree once, and writes it at exactly the smallest size it reports", () =>
    Effect.gen(function* () {
      const dir = scratch("exact")
      const specs: Array<TreeSpec> = [{ path: "", type: "directory", mode: 0o755 }]
      const sizes = [0, 1, 100, 4095, 4096, 4097, 9000, 70_000]
      for (let d = 0; d < 12; d++) {
        specs.push({ path: `d${d}`, type: "directory", mode: 0o755 })
        for (let f = 0; f < (d === 0 ? 1500 : 120); f++) {
          const size = sizes[(d * 7 + f) % sizes.length]!
          specs.push({
            path: `d${d}/file-with-a-longish-name-${f}`,
            type: "file",
            mode: 0o644,
            content: randomBytes(size)
          })
        }
        specs.push({ path: `d${d}/link`, type: "symlink", mode: 0o777, target: "x".repeat(100) })
        specs.push({ path: `d${d}/caps`, type: "file", mode: 0o755, xattrs: [["user.big", Buffer.alloc(200, 1)]] })
      }
      specs.push({ path: "big", type: "file", mode: 0o644, content: randomBytes(40 * MiB) })
      const tree = writeTree(path.join(dir, "tree"), specs)
      const tools = yield* Ext4Tools
      const output = path.join(dir, "exact.ext4")
      const required = yield* Effect.scoped(
        Effect.gen(function* () {
          const draft = yield* tools.openDraft({ output })
          const entries = yield* copyTreeInto(draft, tree)
          const image = yield* draft.plan(entries)
          expect(image.misfit(image.requiredBytes)).toBeUndefined()
          expect(image.misfit(image.requiredBytes - 4096)).toMatch(/need more than its|too small/)
          const chosen = yield* chooseImageSize({ image, entryCount: entries.length, requested: image.requiredBytes })
          expect(chosen.sizeBytes).toBe(image.requiredBytes)
          const refused = yield* Effect.flip(
            chooseImageSize({ image, entryCount: entries.length, requested: image.requiredBytes - 4096 })
          )
          expect(refused._tag).toBe("SizeTooSmall")
          expect(refused.requiredBytes).toBe(image.requiredBytes)
          yield* image.write({ sizeBytes: image.requiredBytes })
          return image.requiredBytes
        })
      )
      // Beyond the contents: a 4 MiB journal, 1.3 MiB of inode table, the 0.5 MiB kept for group
      // descriptors (the draft was opened without a size), directories, bitmaps.
      const contentBytes = tree.entries.reduce((sum, entry) => sum + Math.ceil(entry.size / 4096) * 4096, 0)
      console.log(`requiredBytes ${required}, contents ${contentBytes}`)
      expect(required - contentBytes).toBeGreaterThan(5 * MiB)
      expect(required - contentBytes).toBeLessThan(6.5 * MiB)
      yield* tools.check(output)
      expect(fs.statSync(output).size).toBe(required)
      expectMatches(tree, yield* inspectImage(output))
    }).pipe(Effect.provide(ToolsLive))
  )

  it.live("reads back files whose extents need trees of one and two levels", () =>
    Effect.gen(function* () {
      const dir = scratch("extent-trees")
      const output = path.join(dir, "trees.ext4")
      const draft = ImageDraftFile.open(output, { uuid: "5e6f7a8b-1c2d-4e3f-8a9b-0c1d2e3f4a5b" })
      const tools = yield* Ext4Tools
      const contents = new Map<string, Buffer>()
      try {
        // Files of single blocks allocated in turn, so each of their blocks is an extent of its own:
        // 6 extents need one leaf block, 1400 need five leaves under an index block.
        const names = ["few", "many"]
        const counts = [6, 1400]
        const runs: Array<Array<BlockRun>> = [[], []]
        const spacers: Array<BlockRun> = []
        for (let index = 0; index < 1400; index++) {
          for (const file of [0, 1]) if (index < counts[file]!) runs[file]!.push(...draft.allocator.allocate(1))
          spacers.push(...draft.allocator.allocate(1))
        }
        draft.allocator.free(spacers)
        const entries: Array<TreeEntry> = [{ ...treeRoot }]
        for (const [file, name] of names.entries()) {
          const bytes = randomBytes(counts[file]! * 4096 - 100)
          contents.set(name, bytes)
          runs[file]!.forEach((run, block) => {
            const chunk = Buffer.alloc(4096)
            bytes.copy(chunk, 0, block * 4096, block * 4096 + 4096)
            draft.contents.writeAt(run.start * 4096, chunk)
          })
          entries.push({
            ...treeRoot,
            path: name,
            type: "file",
            mode: 0o644,
            size: bytes.length,
            content: FileBlocks.of(bytes.length, runs[file]!)
          })
        }
        const plan = draft.plan(entries, 1_700_000_000)
        if (typeof plan === "string") throw new Error(plan)
        const geometry = plan.geometry(64 * MiB)
        if (typeof geometry === "string") throw new Error(geometry)
        plan.write({ sizeBytes: 64 * MiB, geometry })
      } finally {
        yield* Effect.promise(() => draft.close())
      }
      yield* tools.check(output)
      const image = yield* inspectImage(output)
      const files = yield* readFilesFromImage(
        output,
        image.filter((entry) => entry.type === "file")
      )
      for (const [name, bytes] of contents) expect(files.get(name)!.equals(bytes), name).toBe(true)
      const depth = (name: string) => {
        const stat = execFileSync("debugfs", ["-R", `stat ${name}`, output], { stdio: ["ignore", "pipe", "ignore"] })
        return Math.max(...[...stat.toString().matchAll(/\(ETB(\d)\)/g)].map((match) => Number(match[1])))
      }
      // debugfs lists the tree's blocks by level below the inode: ETB0 only for one level, ETB1 too for two.
      expect([depth("few"), depth("many")]).toEqual([0, 1])
    }).pipe(Effect.provide(ToolsLive))
  )

  it.live("writes contents back to the disk while they stream in, and syncs the image before it is done", () =>
    Effect.gen(function* () {
      const dir = scratch("writeback")
      const output = path.join(dir, "big.ext4")
      const tools = yield* Ext4Tools
      // 200 MiB: past the 64 MiB after which a background writeback starts (one at a time: these
      // writes do not wait for it, so it is still running as they pass the next 64 MiB).
      const block = randomBytes(MiB)
      const size = 200 * MiB
      const digest = createHash("sha256")
      const draft = ImageDraftFile.open(output, { uuid: "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0" })
      let writebacks = 0
      try {
        const writer = draft.contents.begin(size)
        for (let index = 0; index < size / MiB; index++) {
          const chunk = Buffer.from(block)
          chunk.writeUInt32LE(index, 0)
          digest.update(chunk)
          writer.write(chunk)
        }
        const content = writer.finish()
        writebacks = draft.contents.writebacks
        const plan = draft.plan(
          [{ ...treeRoot }, { ...treeRoot, path: "big", type: "file", mode: 0o644, size, content }],
          1_700_000_000
        )
        if (typeof plan === "string") throw new Error(plan)
        const geometry = plan.geometry(256 * MiB)
        if (typeof geometry === "string") throw new Error(geometry)
        plan.write({ sizeBytes: 256 * MiB, geometry })
        yield* Effect.promise(() => draft.contents.sync())
      } finally {
        // Waits for a writeback still running: the descriptor is not closed under it.
        yield* Effect.promise(() => draft.close())
      }
      expect(writebacks).toBeGreaterThanOrEqual(1)
      yield* tools.check(output)
      const [file] = yield* inspectImage(output).pipe(
        Effect.map((image) => image.filter((entry) => entry.type === "file"))
      )
      const read = yield* readFileFromImage(output, file!.path)
      expect(createHash("sha256").update(read).digest("hex")).toBe(digest.digest("hex"))
    }).pipe(Effect.provide(ToolsLive))
  )

  it.live("applies the entries' own lost+found when they have one", () =>
    Effect.gen(function* () {
      const dir = scratch("lost-found")
      const specs: ReadonlyArray<TreeSpec> = [
        { path: "lost+found", type: "directory", mode: 0o755, uid: 7, gid: 8, mtime: 1_000 },
        { path: "lost+found/#1234", type: "file", mode: 0o600, content: "rescued" }
      ]
      const tree = writeTree(path.join(dir, "tree"), specs)
      const output = path.join(dir, "img.ext4")
      const tools = yield* Ext4Tools
      yield* tools.build({ tree, output, sizeBytes: 16 * MiB })
      yield* tools.check(output)
      const entries = yield* inspectImage(output)
      expect(compareImage(tree.entries, entries)).toEqual([])
      expect(entries.map((entry) => entry.path)).toEqual(["", "lost+found", "lost+found/#1234"])
      expect(entries[1]!.inode).toBe(11)
      yield* expectContents(output, tree, specs, entries)
    }).pipe(Effect.provide(ToolsLive))
  )

  it.live("fails when the tree does not fit, and removes the output", () =>
    Effect.gen(function* () {
      const dir = scratch("toosmall")
      const tree = writeTree(path.join(dir, "tree"), [
        { path: "blob", type: "file", mode: 0o644, content: randomBytes(12 * MiB) }
      ])
      const output = path.join(dir, "small.ext4")
      const tools = yield* Ext4Tools
      const error = yield* Effect.flip(tools.build({ tree, output, sizeBytes: 8 * MiB }))
      expect(error._tag).toBe("Ext4Error")
      expect(error.reason).toMatch(
        /does not fit a 8388608-byte image: the tree and its metadata need more than its 2048 blocks/
      )
      expect(fs.existsSync(output)).toBe(false)
    }).pipe(Effect.provide(ToolsLive))
  )

  it.live("refuses entries ext4 cannot hold, and entries that disagree with the tree", () =>
    Effect.gen(function* () {
      const tools = yield* Ext4Tools
      const attempt = (name: string, specs: ReadonlyArray<TreeSpec>, edit?: (entries: Array<TreeEntry>) => void) =>
        Effect.gen(function* () {
          const dir = scratch(name)
          const tree = writeTree(path.join(dir, "tree"), specs)
          const entries = [...tree.entries]
          edit?.(entries)
          const output = path.join(dir, "out.ext4")
          const error = yield* Effect.flip(
            tools.build({ tree: { dir: tree.dir, entries }, output, sizeBytes: 32 * MiB })
          )
          expect(error._tag).toBe("Ext4Error")
          expect(fs.existsSync(output)).toBe(false)
          return error.reason
        })
      expect(
        yield* attempt("missing", [{ path: "a", type: "file", mode: 0o644 }], (entries) =>
          entries.push({ ...entries[1]!, path: "b" })
        )
      ).toMatch(/"b" is missing from the tree directory/)
      expect(
        yield* attempt("size", [{ path: "a", type: "file", mode: 0o644, content: "abc" }], (entries) => {
          entries[1] = { ...entries[1]!, size: 2 }
        })
      ).toMatch(/holds 3 bytes in the tree directory, 2 in the entries/)
      expect(
        yield* attempt("orphan", [{ path: "a", type: "file", mode: 0o644 }], (entries) =>
          entries.push({ ...entries[1]!, path: "nowhere/b", size: 0, type: "fifo" })
        )
      ).toMatch(/"nowhere\/b": its parent is not an earlier directory entry/)
      // Two 3000-byte values cannot share the one xattr block an inode has.
      expect(
        yield* attempt("xattr-full", [
          {
            path: "a",
            type: "file",
            mode: 0o644,
            xattrs: [
              ["user.one", Buffer.alloc(3000, 1)],
              ["user.two", Buffer.alloc(3000, 2)]
            ]
          }
        ])
      ).toMatch(/"a": xattrs take \d+ bytes outside the inode, more than one 4096-byte block/)
      expect(
        yield* attempt("acl", [
          { path: "a", type: "file", mode: 0o644, xattrs: [["system.posix_acl_access", Buffer.from("not an acl")]] }
        ])
      ).toMatch(/"a": xattr system.posix_acl_access is not a valid POSIX ACL/)
      expect(yield* attempt("device", [{ path: "d", type: "char", mode: 0o600, major: 4096, minor: 0 }])).toMatch(
        /"d": device number 4096:0 does not fit ext4/
      )
    }).pipe(Effect.provide(ToolsLive))
  )

  it.live("check fails on a corrupted image and passes on a clean one", () =>
    Effect.gen(function* () {
      const dir = scratch("fsck")
      const tree = writeTree(path.join(dir, "tree"), [{ path: "a", type: "file", mode: 0o644, content: "a" }])
      const output = path.join(dir, "img.ext4")
      const tools = yield* Ext4Tools
      yield* tools.build({ tree, output, sizeBytes: 16 * MiB })
      yield* tools.check(output)
      const entries = yield* inspectImage(output)
      const file = entries.find((entry) => entry.path === "a")!
      execFileSync("debugfs", ["-w", "-R", `sif <${file.inode}> links_count 7`, output], { stdio: "ignore" })
      const error = yield* Effect.flip(tools.check(output))
      expect(error.tool).toBe("e2fsck")
      expect(error.stderr).toMatch(/Inode \d+ ref count is 7, should be 1/)
      const missing = yield* Effect.flip(tools.check(path.join(dir, "nope.ext4")))
      expect(missing.tool).toBe("e2fsck")
    }).pipe(Effect.provide(ToolsLive))
  )
})
