/**
 * Go's archive/tar test archives applied as layers, the real way: flattened into an ext4 image as
 * the pull does (sparse files' holes must stay holes: only their data blocks are allocated), into
 * a directory as the kernel pull does, and every archive Go rejects failing with `InvalidLayer`
 * and leaving nothing behind.
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Ext4Tools } from "../../../src/layers/ext4/ext4-tools.js"
import { RootfsBuilder } from "../../../src/layers/rootfs/rootfs-builder.js"
import { inspectImage, readFilesFromImage } from "../../support/ext4-inspect.js"
import { layerFromTar } from "../../support/layers.js"
import {
  builderLayer,
  endOfArchive,
  flattenError,
  flattenWith,
  layerFile,
  paxHeader,
  rawHeader,
  type Sandbox,
  sandbox,
  specLayer,
  tmpListing
} from "./harness.js"

const CORPUS = path.join(import.meta.dirname, "../../corpora/go-archive-tar")
const ToolsLive = Ext4Tools.layer.pipe(Layer.provideMerge(NodeContext.layer))

/** A corpus archive as an uncompressed layer blob. */
const corpusLayer = (box: Sandbox, name: string) => {
  const tar = fs.readFileSync(path.join(CORPUS, name))
  const digest = `sha256:${createHash("sha256").update(tar).digest("hex")}`
  return layerFile(box, { tar, blob: tar, compression: "none", digest, diffId: digest, mediaType: "" })
}

/** debugfs's extent list of a file: [logical first block, logical last block, physical first block]. */
const extentsOf = (image: string, file: string): Array<readonly [number, number, number]> => {
  const output = execFileSync("debugfs", ["-R", `ex /${file}`, image], { encoding: "latin1", stdio: "pipe" })
  // " level/depth  entry/entries  first - last  physical ...": leaves are at level === depth.
  return output
    .split("\n")
    .map((line) => /^\s*(\d+)\/\s*(\d+)\s+\d+\/\s*\d+\s+(\d+)\s+-\s+(\d+)\s+(\d+)/.exec(line))
    .filter((match) => match !== null && match[1] === match[2])
    .map((match) => [Number(match![3]), Number(match![4]), Number(match![5])] as const)
}

const SPARSE_FORMATS = ["sparse-gnu", "sparse-posix-0.0", "sparse-posix-0.1", "sparse-posix-1.0"]

/** sparse-formats.tar's files: "\0G\0o\0G\0o...\0!" then zeros (reader_test.go, TestPartialRead). */
const sparseFormatsContent = () => {
  const bytes = Buffer.alloc(200)
  const data = `${"Go".repeat(47)}!`
  for (let i = 0; i < data.length; i++) bytes[2 * i + 1] = data.charCodeAt(i)
  return bytes
}

describe("Go's archive/tar corpus applied as layers", () => {
  it.scopedLive("into an ext4 image: sparse files keep their holes unallocated, e2fsck is clean", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const layers = [
        yield* corpusLayer(box, "sparse-formats.tar"),
        yield* corpusLayer(box, "gnu-sparse-big.tar"),
        yield* corpusLayer(box, "pax-sparse-big.tar"),
        yield* corpusLayer(box, "pax-nil-sparse-hole.tar")
      ]
      const output = path.join(box.root, "rootfs.ext4")
      yield* Effect.scoped(
        Effect.gen(function* () {
          const tools = yield* Ext4Tools
          const builder = yield* RootfsBuilder
          const draft = yield* tools.openDraft({ output, uuid: "0e9a5a38-5b0e-4a43-9c2a-3f55b1b0a002" })
          const entries = yield* builder.flattenInto(layers, draft.contents)
          const image = yield* draft.plan(entries)
          yield* image.write({ sizeBytes: 64 * 2 ** 20 })
          yield* tools.check(output)
        })
      ).pipe(Effect.provide(builderLayer(box)))

      const image = yield* inspectImage(output)
      const sizes = Object.fromEntries(image.filter((e) => e.type === "file").map((e) => [e.path, e.size]))
      expect(sizes).toEqual({
        ...Object.fromEntries(SPARSE_FORMATS.map((name) => [name, 200])),
        end: 4,
        "gnu-sparse": 6e10,
        "pax-sparse": 6e10,
        "sparse.db": 1000
      })
      const files = yield* readFilesFromImage(
        output,
        image.filter((entry) => [...SPARSE_FORMATS, "end", "sparse.db"].includes(entry.path))
      )
      for (const name of SPARSE_FORMATS) expect(files.get(name)!.equals(sparseFormatsContent())).toBe(true)
      expect(files.get("end")!.toString()).toBe("end\n")
      expect(files.get("sparse.db")!.equals(Buffer.alloc(1000))).toBe(true)

      // 60 GB each: six 512-byte fragments, one block each at the end of every 1e10 bytes.
      const wanted = [1, 2, 3, 4, 5, 6].map((k) => Math.floor((k * 1e10 - 512) / 4096))
      for (const name of ["gnu-sparse", "pax-sparse"]) {
        const extents = extentsOf(output, name)
        expect(extents.map(([first, last]) => [first, last])).toEqual(wanted.map((block) => [block, block]))
        // Each block holds its fragment where the file's offset puts it.
        const fd = fs.openSync(output, "r")
        for (const [index, [first, , physical]] of extents.entries()) {
          const within = (index + 1) * 1e10 - 100 - first * 4096
          const tail = Buffer.alloc(100)
          fs.readSync(fd, tail, 0, 100, physical * 4096 + within)
          expect(tail.toString()).toBe("0123456789".repeat(10))
        }
        fs.closeSync(fd)
      }
      // All hole: no extent at all.
      expect(extentsOf(output, "sparse.db")).toEqual([])
      // 95 one-byte fragments, all in the first block.
      expect(extentsOf(output, "sparse-posix-1.0").map(([first, last]) => [first, last])).toEqual([[0, 0]])
    }).pipe(Effect.provide(ToolsLive))
  )

  it.scopedLive("a sparse file in blocks freed by a whiteout: the bytes of its holes read as zeros", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const size = 200_000
      const fragments: ReadonlyArray<readonly [number, string]> = [
        [5000, "0123456789"],
        [100_000, "abc"],
        [size - 10, "ZZZZZZZZZZ"]
      ]
      const data = Buffer.from(fragments.map(([, bytes]) => bytes).join(""))
      // PAX sparse 0.1, written by hand: the lower layer's file fills every block with 0xaa first.
      const sparse = layerFromTar(
        Buffer.concat([
          rawHeader({ name: ".wh.big", type: "0" }),
          paxHeader([
            ["GNU.sparse.major", "0"],
            ["GNU.sparse.minor", "1"],
            ["GNU.sparse.name", "sparse"],
            ["GNU.sparse.realsize", String(size)],
            ["GNU.sparse.numblocks", String(fragments.length)],
            ["GNU.sparse.map", fragments.map(([offset, bytes]) => `${offset},${bytes.length}`).join(",")]
          ]),
          rawHeader({ name: "GNUSparseFile.0/sparse", type: "0", size: data.length }),
          data,
          Buffer.alloc(512 - data.length),
          endOfArchive
        ]),
        "none"
      )
      const layers = [
        yield* specLayer(box, [{ type: "file", name: "big", content: Buffer.alloc(size, 0xaa) }]),
        yield* layerFile(box, sparse)
      ]
      const build = (output: string, from: typeof layers) =>
        Effect.scoped(
          Effect.gen(function* () {
            const tools = yield* Ext4Tools
            const builder = yield* RootfsBuilder
            const draft = yield* tools.openDraft({ output, uuid: "0e9a5a38-5b0e-4a43-9c2a-3f55b1b0a003" })
            const entries = yield* builder.flattenInto(from, draft.contents)
            yield* (yield* draft.plan(entries)).write({ sizeBytes: 64 * 2 ** 20 })
            yield* tools.check(output)
          })
        ).pipe(Effect.provide(builderLayer(box)))
      // The lower layer alone: where the whited-out file's blocks were.
      const lowerOnly = path.join(box.root, "lower.ext4")
      yield* build(lowerOnly, layers.slice(0, 1))
      const bigBlocks = new Set(
        extentsOf(lowerOnly, "big").flatMap(([first, last, physical]) =>
          Array.from({ length: last - first + 1 }, (_, i) => physical + i)
        )
      )
      const output = path.join(box.root, "rootfs.ext4")
      yield* build(output, layers)
      const expected = Buffer.alloc(size)
      for (const [offset, bytes] of fragments) expected.write(bytes, offset, "latin1")
      const image = yield* inspectImage(output)
      expect(image.filter((entry) => entry.type === "file").map((entry) => entry.path)).toEqual(["sparse"])
      const files = yield* readFilesFromImage(
        output,
        image.filter((entry) => entry.path === "sparse")
      )
      expect(files.get("sparse")!.equals(expected)).toBe(true)
      // Three fragments, three blocks (of the 49 the file spans); the rest are holes.
      const extents = extentsOf(output, "sparse")
      expect(extents.map(([first, last]) => [first, last])).toEqual([
        [1, 1],
        [24, 24],
        [48, 48]
      ])
      // The blocks are the freed ones, their 0xaa bytes around the fragments zeroed in place.
      for (const [, , physical] of extents) expect(bigBlocks.has(physical)).toBe(true)
      const fd = fs.openSync(output, "r")
      const block = Buffer.alloc(4096)
      fs.readSync(fd, block, 0, 4096, extents[0]![2] * 4096)
      fs.closeSync(fd)
      expect(block.equals(expected.subarray(4096, 8192))).toBe(true)
    }).pipe(Effect.provide(ToolsLive))
  )

  it.scopedLive("into a directory (the kernel pull's flatten): holes stay holes there too", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const layers = [yield* corpusLayer(box, "pax-sparse-big.tar"), yield* corpusLayer(box, "sparse-formats.tar")]
      yield* flattenWith(box, layers, (tree) =>
        Effect.sync(() => {
          const big = fs.statSync(path.join(tree.dir, "pax-sparse"))
          expect(big.size).toBe(6e10)
          // Six 512-byte fragments: a few blocks, nowhere near 60 GB.
          expect(big.blocks * 512).toBeLessThan(1024 * 1024)
          const fd = fs.openSync(path.join(tree.dir, "pax-sparse"), "r")
          const tail = Buffer.alloc(100)
          fs.readSync(fd, tail, 0, 100, 3e10 - 100)
          fs.closeSync(fd)
          expect(tail.toString()).toBe("0123456789".repeat(10))
          for (const name of SPARSE_FORMATS) {
            expect(fs.readFileSync(path.join(tree.dir, name)).equals(sparseFormatsContent())).toBe(true)
          }
        })
      )
      expect(yield* tmpListing(box)).toEqual([])
    })
  )

  it.scopedLive("every archive Go rejects fails with InvalidLayer naming the problem, nothing left", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const rejected: Record<string, RegExp> = {
        "pax-bad-hdr-file.tar": /malformed PAX record/,
        "pax-bad-hdr-large.tar": /PAX header of \d+ bytes is too large/,
        "pax-bad-mtime-file.tar": /PAX mtime/,
        "pax-nul-xattrs.tar": /PAX record key contains a NUL/,
        "pax-nul-path.tar": /PAX path contains a NUL/,
        "neg-size.tar": /base-256/,
        "issue10968.tar": /base-256/,
        "issue11169.tar": /malformed PAX record/,
        "issue12435.tar": /base-256/
      }
      for (const [name, reason] of Object.entries(rejected)) {
        // After a good layer, so there is something that must not survive either.
        const layers = [yield* corpusLayer(box, "gnu.tar"), yield* corpusLayer(box, name)]
        const error = yield* flattenError(box, layers)
        expect([name, error._tag]).toEqual([name, "InvalidLayer"])
        if (error._tag === "InvalidLayer") expect(error.reason, name).toMatch(reason)
        expect(yield* tmpListing(box)).toEqual([])
      }
    })
  )
})
