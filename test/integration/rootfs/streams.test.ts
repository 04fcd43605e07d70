/**
 * Layer streams: the three compressions, DiffID verification, corrupt, truncated and bomb inputs,
 * the zstd child's lifetime, interruption, and tar dialects (PAX records, GNU long names).
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { RootfsBuilder } from "../../../src/layers/rootfs/rootfs-builder.js"
import { buildTar, type LayerEntrySpec, layerFromTar } from "../../support/layers.js"
import {
  builderLayer,
  decompressorChildren,
  endOfArchive,
  entryAt,
  flattenError,
  flattenWith,
  GZIP_DECODERS,
  gnuLongName,
  layerFile,
  paths,
  paxHeader,
  rawFile,
  rawHeader,
  sandbox,
  sha256,
  tmpListing,
  withDigestHasher,
  withGzipDecoder
} from "./harness.js"

const SAMPLE: ReadonlyArray<LayerEntrySpec> = [
  { type: "directory", name: "./etc/" },
  { type: "file", name: "./etc/hostname", content: "banger\n" },
  { type: "file", name: "./bin/tool", content: Buffer.alloc(300_000, 7), mode: 0o755 },
  { type: "symlink", name: "./sbin", target: "bin" },
  {
    type: "file",
    name: "./bin/cap",
    content: "cap",
    xattrs: { "security.capability": Uint8Array.from([1, 0, 0, 2, 0x80, 0, 0, 0, 0xc3, 0x28]) }
  }
]

const MiB = 1024 * 1024

describe("RootfsBuilder.flatten: layer streams", () => {
  it.scopedLive("gzip (igzip or zlib), zstd and uncompressed layers give the same tree", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const tarball = yield* Effect.promise(() => buildTar(SAMPLE))
      const results: Array<unknown> = []
      const variants = [
        ["gzip", "igzip"],
        ["gzip", "zlib"],
        ["zstd", "igzip"],
        ["none", "igzip"]
      ] as const
      for (const [compression, decoder] of variants) {
        const layer = yield* layerFile(box, layerFromTar(tarball, compression))
        results.push(
          yield* withGzipDecoder(
            decoder,
            flattenWith(box, [layer], (tree) =>
              Effect.promise(async () => {
                expect(await fs.readFile(path.join(tree.dir, "bin/tool"))).toEqual(Buffer.alloc(300_000, 7))
                return tree.entries
              })
            )
          )
        )
      }
      for (const result of results.slice(1)) expect(result).toEqual(results[0])
      expect(Buffer.from(entryAt(results[0] as never, "bin/cap").xattrs[0]![1])).toEqual(
        Buffer.from([1, 0, 0, 2, 0x80, 0, 0, 0, 0xc3, 0x28])
      )
      expect(decompressorChildren()).toEqual([])
    })
  )

  it.scopedLive(
    "a DiffID that does not match the content is a DigestMismatch (hashed by openssl or node), and the tree goes",
    () =>
      Effect.gen(function* () {
        const box = yield* sandbox
        const tarball = yield* Effect.promise(() => buildTar(SAMPLE))
        const wrong = sha256(Buffer.from("something else"))
        for (const hasher of ["openssl", "node"] as const) {
          for (const compression of ["gzip", "zstd", "none"] as const) {
            const layer = yield* layerFile(box, layerFromTar(tarball, compression), { diffId: wrong })
            const error = yield* withDigestHasher(hasher, flattenError(box, [layer]))
            expect(error._tag).toBe("DigestMismatch")
            if (error._tag === "DigestMismatch") {
              expect(error.expected).toBe(wrong)
              expect(error.actual).toBe(sha256(tarball))
            }
          }
        }
        // Not a digest's strict form: another algorithm, or a right digest with something after it.
        for (const diffId of ["md5:abc", `${sha256(tarball)}:extra`]) {
          const unsupported = yield* layerFile(box, layerFromTar(tarball, "none"), { diffId })
          expect((yield* flattenError(box, [unsupported]))._tag).toBe("InvalidLayer")
        }
        expect(yield* tmpListing(box)).toEqual([])
      })
  )

  it.scopedLive("corrupt gzip or zstd, truncated tar, garbage and a missing blob fail cleanly", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const tarball = yield* Effect.promise(() => buildTar(SAMPLE))
      const invalid = (blob: Buffer, compression: "gzip" | "zstd" | "none", diffId = sha256(tarball)) =>
        Effect.gen(function* () {
          const layer = yield* layerFile(box, { ...layerFromTar(tarball, compression), blob, diffId })
          const error = yield* flattenError(box, [layer])
          expect(error._tag).toBe("InvalidLayer")
          return error.message
        })

      const gzip = zlib.gzipSync(tarball)
      const flipped = Buffer.from(gzip)
      for (let i = 40; i < 80; i++) flipped[i] = flipped[i]! ^ 0xa5
      for (const decoder of GZIP_DECODERS) {
        yield* withGzipDecoder(
          decoder,
          Effect.gen(function* () {
            expect(yield* invalid(flipped, "gzip")).toMatch(/gzip/)
            expect(yield* invalid(gzip.subarray(0, gzip.length / 2), "gzip")).toMatch(/gzip|unexpected end/)
            expect(yield* invalid(Buffer.from("not gzip at all"), "gzip")).toMatch(/gzip/)
          })
        )
      }

      const zstd = layerFromTar(tarball, "zstd").blob
      expect(yield* invalid(zstd.subarray(0, zstd.length / 2), "zstd")).toMatch(/zstd/)
      expect(yield* invalid(Buffer.from("not zstd at all"), "zstd")).toMatch(/zstd/)

      // Cut inside the second file's data; the DiffID matches the cut bytes, so only the tar reader can object.
      const cut = tarball.subarray(0, 512 * 4 + 1000)
      expect(yield* invalid(cut, "none", sha256(cut))).toMatch(/truncated|unexpected end/)
      // Cut inside a header block (bin/tool's: etc/, etc/hostname and its data come first).
      const cutHeader = tarball.subarray(0, 512 * 3 + 100)
      expect(yield* invalid(cutHeader, "none", sha256(cutHeader))).toMatch(/truncated|unexpected end/)
      // A PAX header with a truncated record.
      const paxCut = paxHeader([["uid", "5"]]).subarray(0, 512 + 4)
      expect(yield* invalid(paxCut, "none", sha256(paxCut))).toMatch(/truncated|unexpected end/)
      const garbage = Buffer.alloc(4096, 0x41)
      expect(yield* invalid(garbage, "none", sha256(garbage))).toMatch(/checksum/)

      const missing = yield* flattenError(box, [
        { path: path.join(box.blobs, "nope"), digest: "sha256:0", diffId: sha256(tarball), compression: "gzip" }
      ])
      expect(missing.message).toMatch(/ENOENT/)
      expect(missing._tag).toBe("FilesystemError")
      expect(yield* tmpListing(box)).toEqual([])
      expect(decompressorChildren()).toEqual([])
    })
  )

  it.scopedLive("decompression is bounded: gzip (igzip or zlib) and zstd bombs fail once past the limit", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const bomb = yield* Effect.promise(() =>
        buildTar([{ type: "file", name: "zeros", content: Buffer.alloc(16 * MiB) }])
      )
      // Also past the end of the archive: trailing zeros are part of the uncompressed stream.
      const trailing = Buffer.concat([yield* Effect.promise(() => buildTar([])), Buffer.alloc(16 * MiB)])
      for (const [tarball, compression, decoder] of [
        [bomb, "gzip", "igzip"],
        [bomb, "gzip", "zlib"],
        [bomb, "zstd", "igzip"],
        [trailing, "gzip", "igzip"],
        [trailing, "gzip", "zlib"]
      ] as const) {
        const built = layerFromTar(tarball, compression)
        expect(built.blob.length).toBeLessThan(MiB)
        const layer = yield* layerFile(box, built)
        yield* withGzipDecoder(
          decoder,
          Effect.gen(function* () {
            const error = yield* flattenError(box, [layer], { maxUncompressedLayerBytes: MiB })
            expect(error._tag).toBe("InvalidLayer")
            expect(error.message).toMatch(/exceeds the limit of 1048576 bytes/)
            // Under the default limit the same layer is fine.
            yield* flattenWith(box, [layer], () => Effect.void)
          })
        )
      }
      expect(yield* tmpListing(box)).toEqual([])
      expect(decompressorChildren()).toEqual([])
    })
  )

  it.scopedLive("interruption mid-layer kills the zstd child and removes the tree", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const small = yield* layerFile(box, layerFromTar(yield* Effect.promise(() => buildTar(SAMPLE)), "zstd"))
      const big = path.join(box.blobs, "big.zst")
      yield* Effect.promise(() => hugeZstdLayer(big, 4 * 1024 * MiB))
      const applied = yield* Deferred.make<void>()
      const fiber = yield* Effect.scoped(
        Effect.gen(function* () {
          const builder = yield* RootfsBuilder
          return yield* builder.flatten(
            [small, { path: big, digest: "sha256:big", diffId: sha256(Buffer.from("big")), compression: "zstd" }],
            (index) => (index === 0 ? Deferred.succeed(applied, undefined) : Effect.void)
          )
        })
      ).pipe(Effect.provide(builderLayer(box)), Effect.fork)
      yield* Deferred.await(applied)
      // Wait until the big layer's decompressor runs and its file is being written.
      yield* Effect.promise(async () => {
        for (let i = 0; i < 500 && decompressorChildren().length === 0; i++) await new Promise((r) => setTimeout(r, 10))
      })
      expect(decompressorChildren().length).toBe(1)
      yield* Effect.sleep("100 millis")
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(decompressorChildren()).toEqual([])
      expect(yield* tmpListing(box)).toEqual([])
    })
  )

  it.scopedLive("reads PAX records: binary and LIBARCHIVE xattrs, ids, times, sizes, global headers", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const binary = Buffer.from([0x00, 0xff, 0x0a, 0x3d, 0x20, 0xc3])
      const tarball = Buffer.concat([
        // A global header: checked, then set aside as Go's reader does (no record of it reaches an entry).
        Buffer.concat([rawHeader({ name: "global", type: "g", size: 512 }), paxBody([["gid", "77"]])]),
        paxHeader([
          ["LIBARCHIVE.xattr.user.b%3Dq", Buffer.from(binary).toString("base64")],
          ["SCHILY.xattr.user.a", binary],
          // SCHILY cannot carry a name with "=": the key ends at the first one.
          ["SCHILY.xattr.user.c=d", binary],
          ["uid", "3000000000"],
          ["mtime", "1700000123.987654321"],
          ["path", "from/pax/name"],
          ["atime", "1"],
          ["SCHILY.xattr.user.empty", ""]
        ]),
        rawFile("ignored-short-name", "pax file"),
        paxHeader([["gid", ""]]),
        rawFile("gid-reset", "g"),
        paxHeader([["size", "5"]]),
        rawHeader({ name: "sized", type: "0", size: 0 }),
        Buffer.concat([Buffer.from("12345"), Buffer.alloc(507)]),
        rawFile("after", "ok"),
        endOfArchive
      ])
      const layer = yield* layerFile(box, layerFromTar(tarball, "none"))
      yield* flattenWith(box, [layer], (tree) =>
        Effect.promise(async () => {
          const file = entryAt(tree.entries, "from/pax/name")
          expect(file).toMatchObject({ uid: 3_000_000_000, gid: 0, mtime: 1_700_000_123, size: 8 })
          expect(file.xattrs.map(([name]) => name)).toEqual(["user.b=q", "user.a", "user.c", "user.empty"])
          for (const [, value] of file.xattrs.slice(0, 2)) expect(Buffer.from(value)).toEqual(binary)
          expect(Buffer.from(file.xattrs[2]![1])).toEqual(Buffer.concat([Buffer.from("d="), binary]))
          expect(file.xattrs[3]![1].length).toBe(0)
          expect(entryAt(tree.entries, "gid-reset").gid).toBe(0)
          expect(entryAt(tree.entries, "sized").size).toBe(5)
          expect(await fs.readFile(path.join(tree.dir, "sized"), "utf8")).toBe("12345")
          expect(entryAt(tree.entries, "after").gid).toBe(0)
          expect(paths(tree.entries)).not.toContain("ignored-short-name")
        })
      )
    })
  )

  it.scopedLive("reads GNU long names and archives written by GNU tar", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const long = `${"l".repeat(150)}/${"m".repeat(150)}`
      const tarball = Buffer.concat([gnuLongName(long), rawFile("truncated-name", "gnu", { gnu: true }), endOfArchive])
      const layer = yield* layerFile(box, layerFromTar(tarball, "gzip"))
      yield* flattenWith(box, [layer], (tree) => Effect.sync(() => expect(entryAt(tree.entries, long).size).toBe(3)))

      // A real GNU tar archive (gnu format: long names via ././@LongLink), built from a directory.
      const source = path.join(box.root, "src")
      const deep = path.join(source, "a".repeat(120), "b".repeat(120))
      yield* Effect.promise(async () => {
        await fs.mkdir(deep, { recursive: true })
        await fs.writeFile(path.join(deep, "file"), "deep")
        await fs.symlink("a".repeat(120), path.join(source, "link"))
        await fs.link(path.join(deep, "file"), path.join(source, "hard"))
      })
      const gnu = spawnSync("tar", ["--format=gnu", "--sort=name", "-cf", "-", "-C", source, "."], {
        maxBuffer: 64 * MiB
      })
      expect(gnu.status).toBe(0)
      const gnuLayer = yield* layerFile(box, layerFromTar(gnu.stdout, "none"))
      yield* flattenWith(box, [gnuLayer], (tree) =>
        Effect.promise(async () => {
          const deepFile = `${"a".repeat(120)}/${"b".repeat(120)}/file`
          expect(entryAt(tree.entries, deepFile)).toMatchObject({ type: "file", size: 4 })
          // GNU tar stores the second name it meets as the link: "hard" sorts before "aaa...".
          expect(entryAt(tree.entries, "link")).toMatchObject({ type: "symlink", linkTarget: "a".repeat(120) })
          const names = [deepFile, "hard"].map((name) => entryAt(tree.entries, name))
          expect(names.filter((entry) => entry.hardlinkTo !== undefined).length).toBe(1)
          expect(await fs.readFile(path.join(tree.dir, "hard"), "utf8")).toBe("deep")
        })
      )
    })
  )
})

const paxBody = (records: ReadonlyArray<readonly [string, string]>) => {
  // Same record format as harness.paxHeader, padded to one block.
  const body = paxHeader(records).subarray(512)
  return Buffer.concat([body, Buffer.alloc(512)]).subarray(0, 512)
}

/** Streams a tar with one file of `size` zero bytes through `zstd` into `file`, never in memory. */
const hugeZstdLayer = async (file: string, size: number) => {
  const out = await fs.open(file, "w")
  const child = spawn("zstd", ["-q", "-c", "-1"], { stdio: ["pipe", out.fd, "inherit"] })
  const header = rawHeader({ name: "huge", type: "0", size: 0 })
  // Size in base-256 (octal fields top out at 8 GiB; this keeps the helper general).
  header.fill(0, 124, 136)
  header[124] = 0x80
  let rest = size
  for (let i = 135; i > 124; i--) {
    header[i] = rest % 256
    rest = Math.floor(rest / 256)
  }
  header.fill(0x20, 148, 156)
  let sum = 0
  for (const byte of header) sum += byte
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1")
  const write = (data: Buffer) =>
    new Promise<void>((resolve, reject) => child.stdin!.write(data, (error) => (error ? reject(error) : resolve())))
  await write(header)
  const zeros = Buffer.alloc(4 * MiB)
  for (let written = 0; written < size; written += zeros.length) await write(zeros)
  await write(endOfArchive)
  child.stdin!.end()
  await new Promise((resolve) => child.on("exit", resolve))
  await out.close()
}
