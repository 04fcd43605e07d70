/**
 * containerd's layer-application tests (pkg/archive at 301026e: tar_test.go TestBreakouts,
 * TestApplyTar, TestSymlinks, TestRelativeSymlinks, TestTarWithXattr; issues_test.go
 * TestPrefixHeaderReadable) ported to banger's flatten, case by case under containerd's names.
 * containerd's fstest pre-state becomes a lower layer; its validators become checks on the tree,
 * resolving names chroot-like as its fs.RootPath does. Where banger deliberately refuses what
 * containerd applies, the case says so and why, and asserts the refusal.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { TreeEntry } from "../../../src/domain/tree.js"
import { Ext4Tools } from "../../../src/layers/ext4/ext4-tools.js"
import { RootfsBuilder } from "../../../src/layers/rootfs/rootfs-builder.js"
import { type LayerEntrySpec, layerFromTar } from "../../support/layers.js"
import {
  builderLayer,
  flattenError,
  flattenWith,
  layerFile,
  rawHeader,
  type Sandbox,
  sandbox,
  specLayer,
  tmpListing
} from "./harness.js"

type Entries = ReadonlyMap<string, TreeEntry>

/** containerd's fs.RootPath over the tree: symlinks followed inside the root, `..` stops at it. */
const resolve = (entries: Entries, raw: string, followLast = true): string | undefined => {
  const pending = raw.split("/").reverse()
  let current: Array<string> = []
  let hops = 0
  while (pending.length > 0) {
    const name = pending.pop()!
    if (name === "" || name === ".") continue
    if (name === "..") {
      current.pop()
      continue
    }
    const candidate = [...current, name]
    const entry = entries.get(candidate.join("/"))
    if (entry?.type === "symlink" && (pending.length > 0 || followLast) && hops++ < 40) {
      if (entry.linkTarget!.startsWith("/")) current = []
      pending.push(...entry.linkTarget!.split("/").reverse())
      continue
    }
    current = candidate
  }
  const at = current.join("/")
  return entries.has(at) ? at : undefined
}

/** What os.Stat identifies: the inode a name ends at (hardlinked names share the primary's). */
const inodeOf = (entries: Entries, name: string) => {
  const at = resolve(entries, name)
  if (at === undefined) throw new Error(`${name} does not resolve`)
  return entries.get(at)!.hardlinkTo ?? at
}

const sameFile = (a: string, b: string) => (entries: Entries) => expect(inodeOf(entries, a)).toBe(inodeOf(entries, b))
const notSameFile = (a: string, b: string) => (entries: Entries) =>
  expect(inodeOf(entries, a)).not.toBe(inodeOf(entries, b))
const fileValue = (name: string, content: string) => (_: Entries, dir: string) =>
  expect(fs.readFileSync(path.join(dir, name), "utf8")).toBe(content)
const fileNotExists = (name: string) => (entries: Entries) => expect(entries.has(name)).toBe(false)
const isSymlink = (name: string, target: string) => (entries: Entries) =>
  expect(entries.get(name)).toMatchObject({ type: "symlink", linkTarget: target })
const all =
  (...checks: Array<(entries: Entries, dir: string) => void>) =>
  (entries: Entries, dir: string) => {
    for (const check of checks) check(entries, dir)
  }

const dir = (name: string, mode = 0o755): LayerEntrySpec => ({ type: "directory", name, mode })
const file = (name: string, content: string, mode = 0o644): LayerEntrySpec => ({ type: "file", name, content, mode })
/** containerd's argument order: tc.Symlink(oldname, newname). */
const symlink = (target: string, name: string): LayerEntrySpec => ({ type: "symlink", name, target })
const link = (target: string, name: string): LayerEntrySpec => ({ type: "hardlink", name, target })

// Raw headers: tar-stream writes device numbers with 6 octal digits, short of a 20-bit minor.
const device = (name: string, type: "3" | "4", major: number, minor: number) => {
  const block = rawHeader({ name, type, mode: 0o600 })
  block.write(`${major.toString(8).padStart(7, "0")}\0`, 329)
  block.write(`${minor.toString(8).padStart(7, "0")}\0`, 337)
  block.write("        ", 148)
  let sum = 0
  for (const byte of block) sum += byte
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148)
  return block
}

interface Case {
  readonly name: string
  /** containerd's fstest pre-state, as a lower layer. */
  readonly lower?: ReadonlyArray<LayerEntrySpec>
  readonly layer: ReadonlyArray<LayerEntrySpec>
  readonly check?: (entries: Entries, dir: string) => void
  /** containerd fails with errInvalidArchive; banger with this error. */
  readonly error?: { readonly tag: string; readonly reason: RegExp }
  /** Set where banger refuses what containerd applies: why. */
  readonly differs?: string
}

const unbroken = fileValue("etc/unbroken", "unbroken")
const passwd = [dir("etc", 0o770), file("/etc/passwd", "inside")]

const breakouts: ReadonlyArray<Case> = [
  {
    name: "SymlinkAbsolute",
    layer: [dir("etc"), symlink("/etc", "localetc"), file("/localetc/unbroken", "unbroken")],
    check: unbroken
  },
  {
    name: "SymlinkUpAndOut",
    layer: [dir("etc"), dir("dummy"), symlink("/dummy/../etc", "localetc"), file("/localetc/unbroken", "unbroken")],
    check: unbroken
  },
  {
    name: "SymlinkMultipleAbsolute",
    layer: [
      dir("etc"),
      dir("dummy"),
      symlink("/etc", "/dummy/etc"),
      symlink("/dummy/etc", "localetc"),
      file("/dummy/etc/unbroken", "unbroken")
    ],
    check: unbroken
  },
  {
    name: "SymlinkMultipleRelative",
    layer: [
      dir("etc"),
      dir("dummy"),
      symlink("/etc", "/dummy/etc"),
      symlink("./dummy/etc", "localetc"),
      file("/dummy/etc/unbroken", "unbroken")
    ],
    check: unbroken
  },
  {
    name: "SymlinkEmptyFile",
    layer: [dir("etc"), file("etc/emptied", "notempty"), symlink("/etc", "localetc"), file("/localetc/emptied", "")],
    check: fileValue("etc/emptied", "")
  },
  {
    name: "HardlinkRelative",
    layer: [
      ...passwd,
      dir("breakouts"),
      symlink("../../etc", "breakouts/d1"),
      link("/breakouts/d1/passwd", "breakouts/mypasswd")
    ],
    check: sameFile("/breakouts/mypasswd", "/etc/passwd")
  },
  {
    name: "HardlinkDownAndOut",
    layer: [
      ...passwd,
      dir("breakouts"),
      dir("downandout"),
      symlink("../downandout/../../etc", "breakouts/d1"),
      link("/breakouts/d1/passwd", "breakouts/mypasswd")
    ],
    check: sameFile("/breakouts/mypasswd", "/etc/passwd")
  },
  {
    name: "HardlinkAbsolute",
    layer: [...passwd, symlink("/etc", "localetc"), link("/localetc/passwd", "localpasswd")],
    check: sameFile("localpasswd", "/etc/passwd")
  },
  {
    name: "HardlinkRelativeLong",
    layer: [...passwd, symlink("../../../../../../../etc", "localetc"), link("/localetc/passwd", "localpasswd")],
    check: sameFile("localpasswd", "/etc/passwd")
  },
  {
    name: "HardlinkRelativeUpAndOut",
    layer: [...passwd, symlink("upandout/../../../etc", "localetc"), link("/localetc/passwd", "localpasswd")],
    error: { tag: "UnsafeLayerEntry", reason: /hardlink target .* does not exist/ },
    differs:
      "the link target is resolved as link(2) would: `upandout` does not exist, so `upandout/..` cannot be walked through (containerd's RootPath cancels it lexically)"
  },
  {
    name: "HardlinkDirectRelative",
    layer: [...passwd, link("../../../../../etc/passwd", "localpasswd")],
    error: { tag: "UnsafeLayerEntry", reason: /climbs above the root/ },
    differs:
      "a name or hardlink target whose `..` climbs above the root is refused, not clamped: such a layer is hostile or broken"
  },
  {
    name: "HardlinkDirectAbsolute",
    layer: [...passwd, link("/etc/passwd", "localpasswd")],
    check: sameFile("localpasswd", "/etc/passwd")
  },
  {
    name: "SymlinkParentDirectory",
    layer: [...passwd, symlink("/etc/", ".."), link("/etc/passwd", "localpasswd")],
    error: { tag: "UnsafeLayerEntry", reason: /climbs above the root/ },
    differs: "an entry named `..` climbs above the root: refused (containerd ignores it as naming the root)"
  },
  {
    // An entry that names the root and is not a directory is ignored, as containerd ignores it.
    name: "SymlinkEmptyFilename",
    layer: [...passwd, symlink("/etc/", ""), link("/etc/passwd", "localpasswd")],
    check: all(sameFile("/localpasswd", "/etc/passwd"), (entries) => expect(entries.get("")!.type).toBe("directory"))
  },
  {
    name: "SymlinkParentRelative",
    layer: [...passwd, symlink("/etc/", "localetc/sub/.."), link("/etc/passwd", "/localetc/localpasswd")],
    check: sameFile("/localetc/localpasswd", "/etc/passwd")
  },
  {
    name: "SymlinkSlashEnded",
    layer: [...passwd, dir("localetc/", 0o770), link("/etc/passwd", "/localetc/localpasswd")],
    check: sameFile("/localetc/localpasswd", "/etc/passwd")
  },
  {
    name: "SymlinkOverrideDirectory",
    lower: [dir("/etc/"), file("/etc/passwd", "inside"), dir("/localetc/")],
    layer: [symlink("/etc", "localetc"), link("/etc/passwd", "/localetc/localpasswd")],
    check: sameFile("/localetc/localpasswd", "/etc/passwd")
  },
  {
    name: "SymlinkOverrideDirectoryRelative",
    lower: [dir("/etc/"), file("/etc/passwd", "inside"), dir("/localetc/")],
    layer: [symlink("../../etc", "localetc"), link("/etc/passwd", "/localetc/localpasswd")],
    check: sameFile("/localetc/localpasswd", "/etc/passwd")
  },
  {
    name: "DirectoryOverrideSymlink",
    lower: [dir("/etc/"), file("/etc/passwd", "inside"), symlink("/etc", "localetc")],
    layer: [dir("/localetc/"), link("/etc/passwd", "/localetc/localpasswd")],
    check: sameFile("/localetc/localpasswd", "/etc/passwd")
  },
  {
    name: "DirectoryOverrideSymlinkAndHardlink",
    lower: [
      dir("/etc/"),
      file("/etc/passwd", "inside"),
      symlink("etc", "localetc"),
      link("/etc/passwd", "/localetc/localpasswd")
    ],
    layer: [dir("/localetc/"), file("/localetc/localpasswd", "different")],
    check: all(notSameFile("/localetc/localpasswd", "/etc/passwd"), fileValue("etc/passwd", "inside"))
  },
  {
    name: "WhiteoutRootParent",
    lower: [dir("/etc/"), file("/etc/passwd", "inside")],
    layer: [file(".wh...", "")],
    error: { tag: "UnsafeLayerEntry", reason: /whiteout of an invalid name/ }
  },
  {
    name: "WhiteoutParent",
    lower: [dir("/etc/"), file("/etc/passwd", "inside")],
    layer: [file("etc/.wh...", "")],
    error: { tag: "UnsafeLayerEntry", reason: /whiteout of an invalid name/ }
  },
  {
    name: "WhiteoutRoot",
    lower: [dir("/etc/"), file("/etc/passwd", "inside")],
    layer: [file(".wh..", "")],
    error: { tag: "UnsafeLayerEntry", reason: /whiteout of an invalid name/ }
  },
  {
    name: "WhiteoutCurrentDirectory",
    lower: [dir("/etc/"), file("/etc/passwd", "inside")],
    layer: [file("etc/.wh..", "")],
    error: { tag: "UnsafeLayerEntry", reason: /whiteout of an invalid name/ }
  },
  {
    name: "WhiteoutSymlink",
    lower: [dir("/etc/"), file("/etc/passwd", "all users"), symlink("/etc", "localetc")],
    layer: [file(".wh.localetc", "")],
    check: all(fileValue("etc/passwd", "all users"), fileNotExists("localetc"))
  },
  {
    name: "WhiteoutSymlinkPath",
    lower: [
      dir("/etc/"),
      file("/etc/passwd", "all users"),
      file("/etc/whitedout", "ahhhh whiteout"),
      symlink("/etc", "localetc")
    ],
    layer: [file("localetc/.wh.whitedout", "")],
    check: all(fileValue("etc/passwd", "all users"), fileNotExists("etc/whitedout"))
  },
  {
    // Only the last component marks a whiteout: `.wh.etc/` is an ordinary directory.
    name: "WhiteoutDirectoryName",
    lower: [
      dir("/etc/"),
      file("/etc/passwd", "all users"),
      file("/etc/whitedout", "ahhhh whiteout"),
      symlink("/etc", "localetc")
    ],
    layer: [file(".wh.etc/somefile", "non-empty")],
    check: all(fileValue("etc/passwd", "all users"), fileValue(".wh.etc/somefile", "non-empty"))
  },
  {
    name: "WhiteoutDeadSymlinkParent",
    lower: [dir("/etc/"), file("/etc/passwd", "all users"), symlink("/dne", "localetc")],
    layer: [file("localetc/.wh.etc", "")],
    check: fileValue("etc/passwd", "all users")
  },
  {
    name: "WhiteoutRelativePath",
    lower: [dir("/etc/"), file("/etc/passwd", "all users"), symlink("/dne", "localetc")],
    layer: [file("dne/../.wh.etc", "")],
    check: fileNotExists("etc/passwd")
  },
  {
    name: "SymlinkOverridePath",
    layer: [
      dir("foo"),
      dir("foo/tmp"),
      file("foo/tmp/breakout", "012"),
      symlink("/", "foo"),
      file("foo/tmp/breakout", "345"),
      dir("foo"),
      dir("foo/tmp"),
      file("foo/tmp/breakout", "678")
    ],
    // The write through the symlink landed in the root's own tmp/, never outside it.
    check: all(fileValue("foo/tmp/breakout", "678"), fileValue("tmp/breakout", "345"))
  },
  {
    name: "HardlinkSymlinkBeforeCreateTarget",
    layer: [
      dir("etc", 0o770),
      symlink("/etc/passwd", "localpasswd"),
      link("localpasswd", "localpasswd-dup"),
      file("/etc/passwd", "after")
    ],
    check: all(sameFile("localpasswd-dup", "/etc/passwd"), isSymlink("localpasswd-dup", "/etc/passwd"))
  },
  {
    name: "HardlinkSymlinkRelative",
    layer: [...passwd, symlink("../../../../../etc/passwd", "passwdlink"), link("/passwdlink", "localpasswd")],
    check: all(
      isSymlink("localpasswd", "../../../../../etc/passwd"),
      (entries) =>
        expect(entries.get("localpasswd")!.hardlinkTo ?? "localpasswd").toBe(
          entries.get("passwdlink")!.hardlinkTo ?? "localpasswd"
        ),
      sameFile("/localpasswd", "/etc/passwd")
    )
  },
  {
    name: "HardlinkSymlinkAbsolute",
    layer: [...passwd, symlink("/etc/passwd", "passwdlink"), link("/passwdlink", "localpasswd")],
    check: all(isSymlink("localpasswd", "/etc/passwd"), sameFile("/localpasswd", "/etc/passwd"))
  }
]

const run = (box: Sandbox, test: Case) =>
  Effect.gen(function* () {
    const layers = [
      ...(test.lower === undefined ? [] : [yield* specLayer(box, test.lower)]),
      yield* specLayer(box, test.layer)
    ]
    if (test.error !== undefined) {
      const error = yield* flattenError(box, layers)
      expect([test.name, error._tag]).toEqual([test.name, test.error.tag])
      expect(error.message, test.name).toMatch(test.error.reason)
      expect(yield* tmpListing(box)).toEqual([])
      return
    }
    yield* flattenWith(box, layers, (tree) =>
      Effect.sync(() => test.check!(new Map(tree.entries.map((entry) => [entry.path, entry])), tree.dir))
    )
  })

describe("containerd's pkg/archive cases through banger's layer application", () => {
  for (const test of breakouts) {
    const title = test.differs === undefined ? test.name : `${test.name} (differs on purpose: ${test.differs})`
    it.scopedLive(`TestBreakouts/${title}`, () => Effect.flatMap(sandbox, (box) => run(box, test)))
  }

  it.scopedLive("TestBreakouts/HardlinkSymlinkChmod: a hardlinked symlink's mode never reaches the host", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const perm400 = path.join(box.root, "perm400")
      fs.writeFileSync(perm400, "...", { mode: 0o400 })
      const outside = path.join(box.root, "also-exists-outside-root")
      fs.writeFileSync(outside, "...", { mode: 0o640 })
      const layer = yield* specLayer(box, [symlink(perm400, outside), { ...link(outside, "sketchylink"), mode: 0o777 }])
      yield* flattenWith(box, [layer], (tree) =>
        Effect.sync(() => {
          expect(fs.statSync(perm400).mode & 0o777).toBe(0o400)
          expect(fs.statSync(outside).mode & 0o777).toBe(0o640)
          const entries = new Map(tree.entries.map((entry) => [entry.path, entry]))
          expect(entries.get("sketchylink")).toMatchObject({ type: "symlink", linkTarget: perm400 })
        })
      )
    })
  )

  it.scopedLive("TestApplyTar/DirectoryCreation: missing parents are made", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const layers = [
        yield* specLayer(box, [dir("/etc/")]),
        yield* specLayer(box, [
          dir("/etc/subdir"),
          dir("/etc/subdir2/"),
          dir("/etc/subdir2/more"),
          dir("/other/noparent-1/1"),
          dir("/other/noparent-2/2/")
        ])
      ]
      yield* flattenWith(box, layers, (tree) =>
        Effect.sync(() => {
          for (const name of [
            "etc/subdir",
            "etc/subdir2",
            "etc/subdir2/more",
            "other/noparent-1/1",
            "other/noparent-2/2"
          ]) {
            expect(fs.statSync(path.join(tree.dir, name)).isDirectory()).toBe(true)
          }
        })
      )
    })
  )

  it.scopedLive("TestSymlinks and TestRelativeSymlinks: targets are kept verbatim, replaced symlinks replaced", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const base = [dir("/etc/"), dir("/home/"), dir("/home/derek/")]
      const relative: ReadonlyArray<readonly [target: string, name: string]> = [
        ["../other", "/home/derek/other"],
        ["../../etc", "/home/derek/etc"],
        ["up/../../other", "/home/derek/updown"],
        ["../../../breakout", "/home/derek/breakout"],
        ["../../breakout", "/breakout"],
        ["derek/../../../downandout", "/home/breakout"],
        ["/etc", "localetc"]
      ]
      const layers = [
        yield* specLayer(box, [...base, ...relative.map(([target, name]) => symlink(target, name))]),
        // TestSymlinks: the second state of each pair, applied over the first.
        yield* specLayer(box, [
          dir("/bin/"),
          file("/bin/superbinary", "\0\0", 0o755),
          symlink("../bin/superbinary", "/bin/other1"),
          file("/bin/actualbinary", "\0\0", 0o755),
          symlink("actualbinary", "/bin/myapp")
        ]),
        yield* specLayer(box, [
          symlink("/bin/superbinary", "/bin/other1"),
          symlink("../bin/superbinary", "/bin/other2"),
          symlink("superbinary", "/bin/other3"),
          dir("/bin/myapp")
        ])
      ]
      yield* flattenWith(box, layers, (tree) =>
        Effect.sync(() => {
          const entries = new Map(tree.entries.map((entry) => [entry.path, entry]))
          for (const [target, name] of relative) isSymlink(name.replace(/^\//, ""), target)(entries)
          for (const [target, name] of relative) expect(fs.readlinkSync(path.join(tree.dir, name))).toBe(target)
          isSymlink("bin/other1", "/bin/superbinary")(entries)
          isSymlink("bin/other2", "../bin/superbinary")(entries)
          isSymlink("bin/other3", "superbinary")(entries)
          expect(entries.get("bin/myapp")!.type).toBe("directory")
          sameFile("bin/other1", "bin/superbinary")(entries)
        })
      )
    })
  )

  it.scopedLive("TestTarWithXattr: user and security.selinux xattrs are kept byte for byte", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const selinux = "unconfined_u:object_r:default_t:s0\0"
      const layer = yield* specLayer(box, [
        { type: "file", name: "/file", content: "", mode: 0o755, xattrs: { "user.key": "value" } },
        { type: "file", name: "/file2", content: "", mode: 0o755, xattrs: { "security.selinux": selinux } }
      ])
      yield* flattenWith(box, [layer], (tree) =>
        Effect.sync(() => {
          const xattrs = (name: string) =>
            Object.fromEntries(
              tree.entries
                .find((entry) => entry.path === name)!
                .xattrs.map(([key, value]) => [key, Buffer.from(value).toString("latin1")])
            )
          expect(xattrs("file")).toEqual({ "user.key": "value" })
          expect(xattrs("file2")).toEqual({ "security.selinux": selinux })
        })
      )
    })
  )

  it.scopedLive("TestPrefixHeaderReadable: a Go <= 1.7 archive (ustar prefix under the GNU magic) applies", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      // containerd's issues_test.go: the gzip stream, byte for byte.
      const gzip = Buffer.from(
        "\x1f\x8b\x08\x08\x44\x21\x68\x59\x00\x03\x74\x2e\x74\x61\x72\x00\x4b\xcb\xcf\x67\xa0\x35\x30\x80\x00\x86\x06\x10\x47\x01\xc1\x37\x40\x00\x54\xb6\xb1\xa1\xa9\x99\x09\x48\x25\x1d\x40\x69\x71\x49\x62\x91\x02\xe5\x76\xa1\x79\x84\x21\x91\xd6\x80\x72\xaf\x8f\x82\x51\x30\x0a\x46\x36\x00\x00\xf0\x1c\x1e\x95\x00\x06\x00\x00",
        "latin1"
      )
      const tar = zlib.gunzipSync(gzip)
      const digest = (bytes: Buffer) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`
      const layer = yield* layerFile(box, {
        tar,
        blob: gzip,
        compression: "gzip",
        digest: digest(gzip),
        diffId: digest(tar),
        mediaType: ""
      })
      yield* flattenWith(box, [layer], (tree) =>
        Effect.sync(() => {
          const name = `${"a".repeat(100 - "foo".length)}/foo`
          expect(tree.entries.map((entry) => entry.path)).toContain(name)
          expect(fs.lstatSync(path.join(tree.dir, name)).isFile()).toBe(true)
        })
      )
    })
  )

  it.scopedLive("device numbers: ext4's whole range applies (12-bit major, 20-bit minor)", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const built = layerFromTar(
        Buffer.concat([
          device("dev/max", "3", 4095, 1048575),
          device("dev/sda", "4", 8, 0),
          device("dev/null", "3", 1, 3),
          Buffer.alloc(1024)
        ]),
        "none"
      )
      const layer = yield* layerFile(box, built)
      yield* flattenWith(box, [layer], (tree) =>
        Effect.sync(() => {
          const devices = tree.entries.filter((entry) => entry.path.startsWith("dev/"))
          expect(devices.map((entry) => [entry.path, entry.type, entry.devMajor, entry.devMinor])).toEqual([
            ["dev/max", "char", 4095, 1048575],
            ["dev/null", "char", 1, 3],
            ["dev/sda", "block", 8, 0]
          ])
        })
      )
    })
  )

  it.scopedLive("device numbers beyond ext4's range fail the image build, naming the entry, leaving no image", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const layer = yield* layerFile(
        box,
        layerFromTar(Buffer.concat([device("dev/big", "3", 4096, 0), Buffer.alloc(1024)]), "none")
      )
      const output = path.join(box.root, "rootfs.ext4")
      const error = yield* Effect.scoped(
        Effect.gen(function* () {
          const tools = yield* Ext4Tools
          const builder = yield* RootfsBuilder
          const draft = yield* tools.openDraft({ output, uuid: "0e9a5a38-5b0e-4a43-9c2a-3f55b1b0a004" })
          const entries = yield* builder.flattenInto([layer], draft.contents)
          yield* (yield* draft.plan(entries)).write({ sizeBytes: 64 * 2 ** 20 })
        })
      ).pipe(Effect.provide(builderLayer(box)), Effect.flip)
      expect(error.message).toMatch(/"dev\/big": device number 4096:0 does not fit ext4/)
      expect(fs.existsSync(output)).toBe(false)
    }).pipe(Effect.provide(Ext4Tools.layer.pipe(Layer.provideMerge(NodeContext.layer))))
  )
})
