import * as fs from "node:fs/promises"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Ref } from "effect"
import { RootfsBuilder } from "../../../src/layers/rootfs/rootfs-builder.js"
import { builderLayer, entryAt, flattenError, flattenWith, paths, sandbox, specLayer, tmpListing } from "./harness.js"

const CAPABILITY = Uint8Array.from([
  0x01, 0x00, 0x00, 0x02, 0x80, 0x20, 0x00, 0x00, 0xff, 0xfe, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0
])
const LONG_NAME = `deep/${"d".repeat(120)}/${"f".repeat(150)}.txt`
const UNICODE_NAME = "données/日本語/🚀 fusée.txt"

const lstat = (dir: string, relative: string) => fs.lstat(path.join(dir, relative))

describe("RootfsBuilder.flatten: one layer, exact metadata", () => {
  it.scopedLive(
    "keeps types, modes, ids, times, targets, devices and xattrs exactly; the disk holds contents only",
    () =>
      Effect.gen(function* () {
        const box = yield* sandbox
        const layer = yield* specLayer(box, [
          { type: "directory", name: "./", mode: 0o755, mtime: 1_600_000_000 },
          { type: "directory", name: "./etc/", mode: 0o755 },
          {
            type: "file",
            name: "./etc/passwd",
            content: "root:x:0:0::/root:/bin/sh\n",
            mode: 0o644,
            mtime: 1_650_000_001
          },
          { type: "directory", name: "./tmp/", mode: 0o1777 },
          { type: "directory", name: "./usr/", mode: 0o755 },
          { type: "directory", name: "./usr/bin/", mode: 0o755 },
          { type: "file", name: "./usr/bin/sudo", content: "sudo", mode: 0o4755 },
          { type: "file", name: "./usr/bin/wall", content: "wall", mode: 0o2755, gid: 5 },
          {
            type: "file",
            name: "./usr/bin/ping",
            content: "ping",
            mode: 0o755,
            xattrs: { "security.capability": CAPABILITY, "user.note": "hello", "trusted.z": Uint8Array.from([0]) }
          },
          { type: "symlink", name: "./bin", target: "usr/bin" },
          { type: "symlink", name: "./abs", target: "/etc/../etc/passwd" },
          { type: "symlink", name: "./dangling", target: "../../../nowhere" },
          { type: "directory", name: "./dev/", mode: 0o755 },
          { type: "char", name: "./dev/null", major: 1, minor: 3, mode: 0o666 },
          { type: "block", name: "./dev/sda", major: 8, minor: 0, mode: 0o660, gid: 6 },
          { type: "fifo", name: "./dev/initctl", mode: 0o600 },
          { type: "directory", name: "./home/", mode: 0o755 },
          { type: "directory", name: "./home/big/", mode: 0o700, uid: 3_000_000, gid: 4_000_000 },
          { type: "file", name: "./home/big/file", content: "x", uid: 4_294_967_294, gid: 2_097_152 },
          { type: "file", name: LONG_NAME, content: "long" },
          { type: "file", name: UNICODE_NAME, content: "unicode" },
          { type: "file", name: "./odd\nname", content: "newline" }
        ])
        yield* flattenWith(box, [layer], (tree) =>
          Effect.promise(async () => {
            const { dir, entries } = tree
            expect(entries[0]).toMatchObject({
              path: "",
              type: "directory",
              mode: 0o755,
              uid: 0,
              gid: 0,
              mtime: 1_600_000_000
            })
            expect(entryAt(entries, "etc/passwd")).toMatchObject({
              type: "file",
              mode: 0o644,
              size: 26,
              mtime: 1_650_000_001,
              xattrs: []
            })
            expect(entryAt(entries, "tmp")).toMatchObject({ type: "directory", mode: 0o1777 })
            expect(entryAt(entries, "usr/bin/sudo")).toMatchObject({ mode: 0o4755, uid: 0, gid: 0 })
            expect(entryAt(entries, "usr/bin/wall")).toMatchObject({ mode: 0o2755, gid: 5 })
            const ping = entryAt(entries, "usr/bin/ping")
            expect(ping.xattrs.map(([name]) => name)).toEqual(["security.capability", "user.note", "trusted.z"])
            expect(Buffer.from(ping.xattrs[0]![1]).equals(Buffer.from(CAPABILITY))).toBe(true)
            expect(Buffer.from(ping.xattrs[1]![1]).toString()).toBe("hello")
            expect([...ping.xattrs[2]![1]]).toEqual([0])
            expect(entryAt(entries, "bin")).toMatchObject({ type: "symlink", linkTarget: "usr/bin", size: 0 })
            expect(entryAt(entries, "abs")).toMatchObject({ type: "symlink", linkTarget: "/etc/../etc/passwd" })
            expect(entryAt(entries, "dangling").linkTarget).toBe("../../../nowhere")
            expect(entryAt(entries, "dev/null")).toMatchObject({ type: "char", devMajor: 1, devMinor: 3, mode: 0o666 })
            expect(entryAt(entries, "dev/sda")).toMatchObject({ type: "block", devMajor: 8, devMinor: 0, gid: 6 })
            expect(entryAt(entries, "dev/initctl")).toMatchObject({ type: "fifo", mode: 0o600 })
            expect(entryAt(entries, "home/big")).toMatchObject({ uid: 3_000_000, gid: 4_000_000, mode: 0o700 })
            expect(entryAt(entries, "home/big/file")).toMatchObject({ uid: 4_294_967_294, gid: 2_097_152 })
            expect(entryAt(entries, LONG_NAME)).toMatchObject({ type: "file", size: 4 })
            expect(entryAt(entries, UNICODE_NAME)).toMatchObject({ type: "file", size: 7 })
            expect(entryAt(entries, "odd\nname")).toMatchObject({ type: "file", size: 7 })
            // Implicit parents of the long and unicode names.
            expect(entryAt(entries, "données/日本語")).toMatchObject({ type: "directory", mode: 0o755, uid: 0 })

            // Root first, each directory before its children, siblings sorted by bytes.
            expect(paths(entries)).toEqual([
              "",
              "abs",
              "bin",
              "dangling",
              "deep",
              `deep/${"d".repeat(120)}`,
              `deep/${"d".repeat(120)}/${"f".repeat(150)}.txt`,
              "dev",
              "dev/initctl",
              "dev/null",
              "dev/sda",
              "données",
              "données/日本語",
              `données/日本語/🚀 fusée.txt`,
              "etc",
              "etc/passwd",
              "home",
              "home/big",
              "home/big/file",
              "odd\nname",
              "tmp",
              "usr",
              "usr/bin",
              "usr/bin/ping",
              "usr/bin/sudo",
              "usr/bin/wall"
            ])

            // The disk: contents with owner-only permissions, symlinks verbatim, placeholders for nodes.
            expect(await fs.readFile(path.join(dir, "etc/passwd"), "utf8")).toBe("root:x:0:0::/root:/bin/sh\n")
            expect(await fs.readFile(path.join(dir, LONG_NAME), "utf8")).toBe("long")
            expect(await fs.readFile(path.join(dir, UNICODE_NAME), "utf8")).toBe("unicode")
            expect(await fs.readFile(path.join(dir, "odd\nname"), "utf8")).toBe("newline")
            expect(await fs.readlink(path.join(dir, "abs"))).toBe("/etc/../etc/passwd")
            expect(await fs.readlink(path.join(dir, "dangling"))).toBe("../../../nowhere")
            for (const relative of ["dev/null", "dev/sda", "dev/initctl"]) {
              const stat = await lstat(dir, relative)
              expect(stat.isFile()).toBe(true)
              expect(stat.size).toBe(0)
            }
            for (const entry of entries) {
              const stat = await lstat(dir, entry.path)
              if (entry.type === "directory") expect(stat.mode & 0o7777).toBe(0o700)
              else if (entry.type === "symlink") expect(stat.isSymbolicLink()).toBe(true)
              else {
                expect(stat.isFile()).toBe(true)
                expect(stat.mode & 0o7777).toBe(0o600)
              }
            }
          })
        )
        expect(yield* tmpListing(box)).toEqual([])
      })
  )
})

describe("RootfsBuilder.flatten: changesets", () => {
  it.scopedLive("a parent path replaced by an entry under it is resolved again for the next one", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const layer = yield* specLayer(box, [
        { type: "directory", name: "x/" },
        { type: "symlink", name: "x/l", target: "." },
        // Parent "x/l" is x itself, so this replaces the symlink with a directory...
        { type: "directory", name: "x/l/l/" },
        // ...and the same parent path now names that directory.
        { type: "file", name: "x/l/f", content: "f" }
      ])
      yield* flattenWith(box, [layer], (tree) =>
        Effect.promise(async () => {
          expect(paths(tree.entries)).toEqual(["", "x", "x/l", "x/l/f"])
          expect(await fs.readFile(path.join(tree.dir, "x/l/f"), "utf8")).toBe("f")
        })
      )
    })
  )

  it.scopedLive("a name ending in . or .. names its directory, whatever entry came before it", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const layer = yield* specLayer(box, [
        { type: "directory", name: "a/" },
        { type: "directory", name: "a/b/" },
        { type: "file", name: "a/b/one", content: "1" },
        // The directory a/b itself, after an entry inside it, then an entry inside it again.
        { type: "directory", name: "a/b/.", mode: 0o700 },
        { type: "file", name: "a/b/two", content: "2" },
        { type: "directory", name: "a/b/c/" },
        { type: "file", name: "a/b/c/three", content: "3" },
        // a/b/c/.. is a/b again.
        { type: "directory", name: "a/b/c/..", mode: 0o750 },
        { type: "file", name: "a/b/c/four", content: "4" }
      ])
      yield* flattenWith(box, [layer], (tree) =>
        Effect.promise(async () => {
          expect(paths(tree.entries)).toEqual([
            "",
            "a",
            "a/b",
            "a/b/c",
            "a/b/c/four",
            "a/b/c/three",
            "a/b/one",
            "a/b/two"
          ])
          expect(entryAt(tree.entries, "a/b").mode).toBe(0o750)
        })
      )
    })
  )

  it.scopedLive("whiteouts and opaque markers hide lower layers only, whatever the tar order", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const lower = yield* specLayer(box, [
        { type: "directory", name: "a/" },
        { type: "file", name: "a/x", content: "x" },
        { type: "directory", name: "a/y/" },
        { type: "file", name: "a/y/z", content: "z" },
        { type: "file", name: "b", content: "b" },
        { type: "directory", name: "c/" },
        { type: "file", name: "c/old", content: "old" },
        { type: "directory", name: "c/olddir/" },
        { type: "file", name: "c/olddir/deep", content: "deep" },
        { type: "directory", name: "d/" },
        { type: "file", name: "d/keep", content: "keep" },
        { type: "directory", name: "e/" },
        { type: "directory", name: "e/sub/" },
        { type: "file", name: "e/sub/old", content: "old" },
        { type: "file", name: "f", content: "lower f" },
        { type: "file", name: "g", content: "lower g" }
      ])
      const upper = yield* specLayer(box, [
        { type: "file", name: ".wh.b" },
        { type: "file", name: "a/.wh.y" },
        // Opaque marker before this layer's own entries...
        { type: "file", name: "c/.wh..wh..opq" },
        { type: "file", name: "c/new", content: "new" },
        // ...and after them.
        { type: "file", name: "d/new2", content: "new2" },
        { type: "file", name: "d/.wh..wh..opq" },
        // A directory this layer re-declares merges, but an opaque parent still hides its lower children.
        { type: "directory", name: "e/sub/", mode: 0o750 },
        { type: "file", name: "e/sub/mine", content: "mine" },
        { type: "file", name: "e/.wh..wh..opq" },
        // Whiteout after a same-layer entry does not hide it; one before it hides only the lower one.
        { type: "file", name: "f", content: "upper f" },
        { type: "file", name: ".wh.f" },
        { type: "file", name: ".wh.g" },
        { type: "file", name: "g", content: "upper g" },
        // Whiteouts of things that never existed are harmless.
        { type: "file", name: "nothere/.wh.nothing" },
        { type: "file", name: ".wh.ghost" }
      ])
      yield* flattenWith(box, [lower, upper], (tree) =>
        Effect.promise(async () => {
          expect(paths(tree.entries)).toEqual([
            "",
            "a",
            "a/x",
            "c",
            "c/new",
            "d",
            "d/new2",
            "e",
            "e/sub",
            "e/sub/mine",
            "f",
            "g"
          ])
          expect(entryAt(tree.entries, "e/sub").mode).toBe(0o750)
          expect(await fs.readFile(path.join(tree.dir, "f"), "utf8")).toBe("upper f")
          expect(await fs.readFile(path.join(tree.dir, "g"), "utf8")).toBe("upper g")
          // The disk mirrors the model exactly: nothing hidden is left behind.
          const onDisk = async (dir: string, prefix = ""): Promise<Array<string>> => {
            const out: Array<string> = []
            for (const name of (await fs.readdir(dir)).sort()) {
              out.push(`${prefix}${name}`)
              if ((await fs.lstat(path.join(dir, name))).isDirectory()) {
                out.push(...(await onDisk(path.join(dir, name), `${prefix}${name}/`)))
              }
            }
            return out
          }
          expect(await onDisk(tree.dir)).toEqual(paths(tree.entries).slice(1))
        })
      )
    })
  )

  it.scopedLive("replaces file, directory, symlink and device with one another; directory over directory merges", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const one = yield* specLayer(box, [
        { type: "file", name: "p", content: "p file" },
        { type: "directory", name: "q/" },
        { type: "file", name: "q/child", content: "child" },
        { type: "symlink", name: "r", target: "/somewhere" },
        { type: "file", name: "s", content: "s file" },
        { type: "directory", name: "t/" },
        { type: "char", name: "v", major: 5, minor: 1 },
        { type: "directory", name: "u/", mode: 0o755, uid: 0, mtime: 1000, xattrs: { "user.lower": "1" } },
        { type: "file", name: "u/kid", content: "kid" },
        { type: "symlink", name: "w", target: "wdir" },
        { type: "directory", name: "wdir/" },
        { type: "file", name: "wdir/inside", content: "inside" }
      ])
      const two = yield* specLayer(box, [
        { type: "directory", name: "p/" },
        { type: "file", name: "p/inner", content: "inner" },
        { type: "file", name: "q", content: "q file" },
        { type: "directory", name: "r/", mode: 0o711 },
        { type: "symlink", name: "s", target: "p/inner" },
        { type: "block", name: "t", major: 7, minor: 0 },
        { type: "file", name: "v", content: "v file" },
        { type: "directory", name: "u/", mode: 0o700, uid: 1000, gid: 1000, mtime: 2000 },
        // A directory entry over a symlink to a directory replaces the symlink, never follows it.
        { type: "directory", name: "w/", mode: 0o755 }
      ])
      const three = yield* specLayer(box, [{ type: "symlink", name: "p", target: "q" }])
      yield* flattenWith(box, [one, two, three], (tree) =>
        Effect.promise(async () => {
          const { dir, entries } = tree
          expect(entryAt(entries, "p")).toMatchObject({ type: "symlink", linkTarget: "q" })
          expect(entries.some((entry) => entry.path === "p/inner")).toBe(false)
          expect(entryAt(entries, "q")).toMatchObject({ type: "file", size: 6 })
          expect(entries.some((entry) => entry.path === "q/child")).toBe(false)
          expect(entryAt(entries, "r")).toMatchObject({ type: "directory", mode: 0o711, linkTarget: undefined })
          expect(entryAt(entries, "s")).toMatchObject({ type: "symlink", linkTarget: "p/inner", size: 0 })
          expect(entryAt(entries, "t")).toMatchObject({ type: "block", devMajor: 7, devMinor: 0 })
          expect(entryAt(entries, "v")).toMatchObject({ type: "file", size: 6, devMajor: undefined })
          expect(entryAt(entries, "u")).toMatchObject({ mode: 0o700, uid: 1000, gid: 1000, mtime: 2000, xattrs: [] })
          expect(entryAt(entries, "u/kid")).toMatchObject({ type: "file", size: 3 })
          expect(entryAt(entries, "w")).toMatchObject({ type: "directory", mode: 0o755 })
          expect(entryAt(entries, "wdir/inside").type).toBe("file")

          expect(await fs.readlink(path.join(dir, "p"))).toBe("q")
          expect(await fs.readFile(path.join(dir, "q"), "utf8")).toBe("q file")
          expect((await lstat(dir, "r")).isDirectory()).toBe(true)
          expect(await fs.readlink(path.join(dir, "s"))).toBe("p/inner")
          expect((await lstat(dir, "t")).size).toBe(0)
          expect(await fs.readFile(path.join(dir, "v"), "utf8")).toBe("v file")
          expect(await fs.readFile(path.join(dir, "u/kid"), "utf8")).toBe("kid")
          expect((await lstat(dir, "w")).isDirectory()).toBe(true)
          expect(await fs.readdir(path.join(dir, "w"))).toEqual([])
        })
      )
    })
  )

  it.scopedLive("hardlinks share one inode on disk and one set of metadata in the entries", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const one = yield* specLayer(box, [
        { type: "directory", name: "bin/" },
        {
          type: "file",
          name: "bin/busybox",
          content: "#!busybox",
          mode: 0o755,
          uid: 0,
          mtime: 1_234_567,
          xattrs: { "security.capability": CAPABILITY }
        },
        { type: "hardlink", name: "bin/sh", target: "bin/busybox", mode: 0o755, mtime: 1_234_567 },
        { type: "fifo", name: "pipe" },
        { type: "hardlink", name: "pipe2", target: "./pipe" }
      ])
      const two = yield* specLayer(box, [
        // To a lower layer's file, in absolute form; the header's mode reaches every name.
        { type: "hardlink", name: "bin/ls", target: "/bin/busybox", mode: 0o4755, mtime: 1_234_567 },
        { type: "directory", name: "sbin/" },
        { type: "hardlink", name: "sbin/init", target: "./bin/../bin/busybox", mode: 0o4755, mtime: 1_234_567 }
      ])
      yield* flattenWith(box, [one, two], (tree) =>
        Effect.promise(async () => {
          const { dir, entries } = tree
          const names = ["bin/busybox", "bin/ls", "bin/sh", "sbin/init"]
          for (const name of names) {
            const entry = entryAt(entries, name)
            expect(entry).toMatchObject({ type: "file", mode: 0o4755, uid: 0, mtime: 1_234_567, size: 9 })
            expect(Buffer.from(entry.xattrs[0]![1]).equals(Buffer.from(CAPABILITY))).toBe(true)
            expect(entry.hardlinkTo).toBe(name === "bin/busybox" ? undefined : "bin/busybox")
          }
          expect(entryAt(entries, "pipe")).toMatchObject({ type: "fifo", hardlinkTo: undefined })
          expect(entryAt(entries, "pipe2")).toMatchObject({ type: "fifo", hardlinkTo: "pipe" })
          const stats = await Promise.all(names.map((name) => lstat(dir, name)))
          expect(new Set(stats.map((stat) => stat.ino)).size).toBe(1)
          expect(stats[0]!.nlink).toBe(4)
          expect((await lstat(dir, "pipe2")).ino).toBe((await lstat(dir, "pipe")).ino)
        })
      )

      // Once the first name is whited out, the next one in order becomes the primary.
      const three = yield* specLayer(box, [{ type: "file", name: "bin/.wh.busybox" }])
      yield* flattenWith(box, [one, two, three], (tree) =>
        Effect.sync(() => {
          expect(entryAt(tree.entries, "bin/ls").hardlinkTo).toBeUndefined()
          expect(entryAt(tree.entries, "bin/sh").hardlinkTo).toBe("bin/ls")
          expect(entryAt(tree.entries, "sbin/init").hardlinkTo).toBe("bin/ls")
        })
      )
    })
  )

  it.scopedLive("rejects hardlinks to missing targets and to directories", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const missing = yield* specLayer(box, [{ type: "hardlink", name: "x", target: "nope" }])
      const toDir = yield* specLayer(box, [
        { type: "directory", name: "d/" },
        { type: "hardlink", name: "x", target: "d" }
      ])
      const toRoot = yield* specLayer(box, [{ type: "hardlink", name: "x", target: "./" }])
      for (const layer of [missing, toDir, toRoot]) {
        const error = yield* flattenError(box, [layer])
        expect(error._tag).toBe("UnsafeLayerEntry")
      }
      expect(yield* tmpListing(box)).toEqual([])
    })
  )

  it.scopedLive("calls onLayerApplied after each layer in order, and removes the tree when the scope closes", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const layers = [
        yield* specLayer(box, [{ type: "file", name: "one", content: "1" }]),
        yield* specLayer(box, [{ type: "file", name: "two", content: "2" }]),
        yield* specLayer(box, [{ type: "file", name: "three", content: "3" }])
      ]
      const seen = yield* Ref.make<Array<number>>([])
      const dir = yield* Effect.scoped(
        Effect.gen(function* () {
          const builder = yield* RootfsBuilder
          const tree = yield* builder.flatten(layers, (index) => Ref.update(seen, (list) => [...list, index]))
          expect(tree.dir.startsWith(`${box.tmp}/`)).toBe(true)
          expect((yield* Effect.promise(() => fs.readdir(tree.dir))).sort()).toEqual(["one", "three", "two"])
          return tree.dir
        })
      ).pipe(Effect.provide(builderLayer(box)))
      expect(yield* Ref.get(seen)).toEqual([0, 1, 2])
      expect(
        yield* Effect.promise(() =>
          fs.access(dir).then(
            () => true,
            () => false
          )
        )
      ).toBe(false)
      expect(yield* tmpListing(box)).toEqual([])
    })
  )

  it.scopedLive("an empty list of layers gives just the default root", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      yield* flattenWith(box, [], (tree) =>
        Effect.sync(() =>
          expect(tree.entries).toEqual(
            [{ path: "", type: "directory", mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0, xattrs: [] }].map((entry) =>
              expect.objectContaining(entry)
            )
          )
        )
      )
    })
  )
})
