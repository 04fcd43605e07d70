/**
 * gunzip over a blob reader: how far ahead of its consumer it reads, that it reuses two buffers,
 * and that a failing reader (a failed download) fails the output with the reader's error. The
 * igzip child: the same bytes from a descriptor or fed, its failures in words, and its reaping.
 */
import { randomBytes } from "node:crypto"
import { createReadStream, readdirSync, readFileSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import * as zlib from "node:zlib"
import { describe, expect, it } from "@effect/vitest"
import { Data, Effect } from "effect"
import { closeQuietly, openPipe, teeSplice } from "../../../src/layers/host/big-pipe.js"
import { type BlobReader, fileReader } from "../../../src/layers/rootfs/blob-reader.js"
import type { Pull, PullSource } from "../../../src/layers/rootfs/byte-reader.js"
import { gunzipPull, gzipDecoder, igzip } from "../../../src/layers/rootfs/decompress.js"
import { childPull } from "../../../src/layers/rootfs/decompressor-child.js"
import { decompressorChildren, sandbox } from "./harness.js"

const MiB = 1024 * 1024

class ReadFailed extends Data.TaggedError("ReadFailed")<{ readonly at: number }> {}

/** A file's reader that records what it was asked to read into, and fails after `failAfter` reads. */
const recordingReader = (file: string, failAfter = Number.POSITIVE_INFINITY) =>
  Effect.gen(function* () {
    const handle = yield* Effect.acquireRelease(
      Effect.promise(() => fs.open(file, "r")),
      (handle) => Effect.promise(() => handle.close())
    )
    const inner = fileReader(handle, (error) => error)
    const buffers: Array<Uint8Array> = []
    let bytes = 0
    const reader: BlobReader<unknown> = {
      read: (into) =>
        Effect.suspend(() => {
          if (buffers.length >= failAfter) return Effect.fail(new ReadFailed({ at: bytes }))
          buffers.push(into)
          return Effect.tap(inner.read(into), (read) =>
            Effect.sync(() => {
              bytes += read
            })
          )
        })
    }
    return { reader, buffers, bytesRead: () => bytes }
  })

/** 8 MiB of random bytes, each repeated four times: ~6 MiB gzipped, so 24 reads or more. */
const gzipFile = (dir: string) =>
  Effect.promise(async () => {
    const plain = Buffer.alloc(8 * MiB)
    const noise = randomBytes(2 * MiB)
    for (let i = 0; i < plain.length; i++) plain[i] = noise[i >> 2]!
    const file = path.join(dir, "layer.gz")
    await fs.writeFile(file, zlib.gzipSync(plain, { level: 1 }))
    return { file, plain }
  })

describe("gunzipPull", () => {
  it.scopedLive("reads the blob no further ahead than its output is taken, always into the same two buffers", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const { file, plain } = yield* gzipFile(box.root)
      const compressed = (yield* Effect.promise(() => fs.stat(file))).size
      expect(compressed).toBeGreaterThan(4 * MiB)
      const recording = yield* recordingReader(file)
      const pull = yield* gunzipPull(recording.reader, { name: "test" })

      const first = yield* pull
      expect(first?.length).toBeGreaterThan(0)
      // Left alone, an eager feeder would read the whole blob meanwhile.
      yield* Effect.sleep("300 millis")
      expect(recording.bytesRead()).toBeLessThanOrEqual(MiB)

      const chunks = [...first!]
      while (true) {
        const next = yield* pull
        if (next === undefined) break
        chunks.push(...next)
      }
      expect(Buffer.concat(chunks).equals(plain)).toBe(true)
      expect(recording.bytesRead()).toBe(compressed)
      expect(recording.buffers.length).toBeGreaterThan(compressed / (256 * 1024))
      expect(new Set(recording.buffers).size).toBe(2)
    })
  )

  it.scopedLive("fails with the reader's error when a read fails mid-blob", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const { file } = yield* gzipFile(box.root)
      const recording = yield* recordingReader(file, 3)
      const pull = yield* gunzipPull(recording.reader, { name: "test" })
      const drained = Effect.gen(function* () {
        while ((yield* pull) !== undefined) {}
      })
      const error = yield* Effect.flip(drained)
      expect(error).toBeInstanceOf(ReadFailed)
      expect((error as ReadFailed).at).toBe(3 * 256 * 1024)
    })
  )

  it.scopedLive("fails as gzip's complaint, not a hang, when the blob is not gzip", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const file = path.join(box.root, "garbage")
      yield* Effect.promise(() => fs.writeFile(file, randomBytes(MiB)))
      const recording = yield* recordingReader(file)
      const pull = yield* gunzipPull(recording.reader, { name: "layer-x" })
      const error = yield* Effect.flip(pull)
      expect(error).toMatchObject({ _tag: "InvalidLayer", layer: "layer-x" })
      expect(String((error as { message: string }).message)).toMatch(/gzip: /)
    })
  )
})

const drain = <E>(from: Pull<E> | PullSource<E>) =>
  Effect.gen(function* () {
    const pull = Effect.isEffect(from) ? from : from.pull
    const chunks: Array<Uint8Array> = []
    while (true) {
      const next = yield* pull
      if (next === undefined) return Buffer.concat(chunks)
      chunks.push(...next)
    }
  })

/** Copies each chunk and gives it back at once, as the byte reader does at its next fill. */
const drainReleasing = <E>(source: PullSource<E>) =>
  Effect.gen(function* () {
    const copies: Array<Buffer> = []
    const buffers = new Set<ArrayBufferLike>()
    while (true) {
      const next = yield* source.pull
      if (next === undefined) return { bytes: Buffer.concat(copies), buffers: buffers.size, reads: copies.length }
      for (const chunk of next) {
        buffers.add(chunk.buffer)
        copies.push(Buffer.from(chunk))
        chunk.fill(0xaa)
        source.release(chunk)
      }
    }
  })

const openHandle = (file: string) =>
  Effect.acquireRelease(
    Effect.promise(() => fs.open(file, "r")),
    (handle) => Effect.promise(() => handle.close())
  )

/** The threads of this process that teeSplice started and that have not ended yet. */
const teeThreads = () =>
  readdirSync("/proc/self/task").filter((task) => {
    try {
      return readFileSync(`/proc/self/task/${task}/comm`, "utf8").trim() === "banger-tee"
    } catch {
      return false // ended while listed
    }
  }).length

const eventually = (check: () => boolean) =>
  Effect.promise(async () => {
    for (let waited = 0; !check() && waited < 5000; waited += 20) await sleep(20)
    return check()
  })

/** A pipe to copy into, and everything read from it until its end (our write end is closed at once). */
const copyPipe = Effect.acquireRelease(
  Effect.sync(() => {
    const pipe = openPipe(1024 * 1024)
    const stream = createReadStream("", { fd: pipe.read })
    const received = new Promise<Buffer>((resolve, reject) => {
      const chunks: Array<Buffer> = []
      stream.on("data", (chunk) => chunks.push(chunk as Buffer))
      stream.on("end", () => resolve(Buffer.concat(chunks)))
      stream.on("error", reject)
    })
    return { write: pipe.write, received, stream }
  }),
  ({ write, stream }) =>
    Effect.sync(() => {
      closeQuietly(write)
      stream.destroy()
    })
)

describe("teeSplice", () => {
  it("refuses descriptors that are not pipes", () => {
    const pipe = openPipe(64 * 1024)
    try {
      expect(() => teeSplice(0o777, pipe.write, pipe.write)).toThrow(/must be a pipe/)
    } finally {
      closeQuietly(pipe.read)
      closeQuietly(pipe.write)
    }
  })
})

describe("childPull (igzip)", () => {
  it.scopedLive(
    "with a pipe to copy to, the same bytes reach it, ending with the output, from a descriptor or fed",
    () =>
      Effect.gen(function* () {
        const box = yield* sandbox
        const { file, plain } = yield* gzipFile(box.root)
        for (const input of ["descriptor", "fed"] as const) {
          const copy = yield* copyPipe
          const source =
            input === "descriptor"
              ? yield* childPull<never>(
                  igzip,
                  { _tag: "Descriptor", fd: (yield* openHandle(file)).fd },
                  { name: "t" },
                  copy.write
                )
              : yield* childPull(
                  igzip,
                  { _tag: "Fed", reader: (yield* recordingReader(file)).reader },
                  { name: "t" },
                  copy.write
                )
          // The copy's end comes from the thread, which has its own descriptor: ours goes now.
          closeQuietly(copy.write)
          expect(yield* eventually(() => teeThreads() === 1)).toBe(true)
          const { bytes } = yield* drainReleasing(source)
          expect(bytes.equals(plain)).toBe(true)
          expect((yield* Effect.promise(() => copy.received)).equals(plain)).toBe(true)
          expect(yield* eventually(() => teeThreads() === 0)).toBe(true)
        }
      })
  )

  it.scopedLive("a copy whose reader goes away fails the output as that, not as a corrupt layer", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const { file } = yield* gzipFile(box.root)
      // The hasher gone before it read anything: the copy pipe has no reader.
      const pipe = openPipe(1024 * 1024)
      closeQuietly(pipe.read)
      const handle = yield* openHandle(file)
      const source = yield* childPull<never>(igzip, { _tag: "Descriptor", fd: handle.fd }, { name: "t" }, pipe.write)
      closeQuietly(pipe.write)
      const error = yield* Effect.flip(drain(source))
      expect(error).toMatchObject({ _tag: "FilesystemError", path: "igzip" })
      expect(error.message).toMatch(/killed by SIGPIPE: the copy of its output \(the DiffID hasher\) stopped reading/)
      expect(yield* eventually(() => teeThreads() === 0)).toBe(true)
    })
  )

  it.scopedLive("closing the scope mid-stream with a copy ends the copying thread and the copy", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const { file, plain } = yield* gzipFile(box.root)
      const copy = yield* copyPipe
      yield* Effect.scoped(
        Effect.gen(function* () {
          const handle = yield* openHandle(file)
          const source = yield* childPull<never>(
            igzip,
            { _tag: "Descriptor", fd: handle.fd },
            { name: "t" },
            copy.write
          )
          closeQuietly(copy.write)
          expect((yield* source.pull)?.length).toBeGreaterThan(0)
        })
      )
      expect(decompressorChildren()).toEqual([])
      expect(yield* eventually(() => teeThreads() === 0)).toBe(true)
      const copied = yield* Effect.promise(() => copy.received)
      expect(copied.length).toBeLessThan(plain.length)
      expect(copied.equals(plain.subarray(0, copied.length))).toBe(true)
    })
  )

  it.scopedLive("inflates a multi-member blob read from its descriptor or fed through a pipe, byte for byte", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const { file, plain } = yield* gzipFile(box.root)
      const tail = Buffer.from("a second gzip member, as concatenated gzip files have\n".repeat(1000))
      const multi = path.join(box.root, "multi.gz")
      yield* Effect.promise(async () =>
        fs.writeFile(multi, Buffer.concat([await fs.readFile(file), zlib.gzipSync(tail)]))
      )
      const expected = Buffer.concat([plain, tail])

      const handle = yield* openHandle(multi)
      const fromDescriptor = yield* childPull<never>(igzip, { _tag: "Descriptor", fd: handle.fd }, { name: "test" })
      expect((yield* drain(fromDescriptor)).equals(expected)).toBe(true)

      const recording = yield* recordingReader(multi)
      const fed = yield* childPull(igzip, { _tag: "Fed", reader: recording.reader }, { name: "test" })
      expect((yield* drain(fed)).equals(expected)).toBe(true)
      expect(new Set(recording.buffers).size).toBe(2)
    })
  )

  it.scopedLive("reads into the same few buffers when each chunk is given back once read", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const { file, plain } = yield* gzipFile(box.root)
      const handle = yield* openHandle(file)
      const source = yield* childPull<never>(igzip, { _tag: "Descriptor", fd: handle.fd }, { name: "test" })
      const { bytes, buffers, reads } = yield* drainReleasing(source)
      // Released chunks were scribbled over before being read into again: the bytes still match.
      expect(bytes.equals(plain)).toBe(true)
      // 8 MiB in reads of at most 512 KiB, through the few buffers the pool keeps (two or three,
      // when each comes back before the next read; up to four reads may wait to be pulled).
      expect(reads).toBeGreaterThanOrEqual(16)
      expect(buffers).toBeLessThan(reads)
      expect(buffers).toBeLessThanOrEqual(8)
    })
  )

  it.scopedLive("a corrupt or cut-short blob fails as an InvalidLayer saying so", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const { file } = yield* gzipFile(box.root)
      const whole = yield* Effect.promise(() => fs.readFile(file))
      const corrupt = Buffer.from(whole)
      corrupt[corrupt.length - 6] = corrupt[corrupt.length - 6]! ^ 0xff // the CRC32 in the trailer
      const cases = { "corrupt.gz": corrupt, "cut.gz": whole.subarray(0, whole.length >> 1) }
      for (const [name, bytes] of Object.entries(cases)) {
        const target = path.join(box.root, name)
        yield* Effect.promise(() => fs.writeFile(target, bytes))
        const handle = yield* openHandle(target)
        const pull = yield* childPull<never>(igzip, { _tag: "Descriptor", fd: handle.fd }, { name: "layer-x" })
        const error = yield* Effect.flip(drain(pull))
        expect(error).toMatchObject({ _tag: "InvalidLayer", layer: "layer-x" })
        expect(error.message).toMatch(/gzip: corrupt or truncated \(igzip exited with code 1\): igzip: Error/)
        expect(error.message).not.toMatch(/null/)
      }
    })
  )

  it.scopedLive("bytes after the last member that start no new one are ignored, where zlib refuses them", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const { file, plain } = yield* gzipFile(box.root)
      const trailing = path.join(box.root, "trailing.gz")
      yield* Effect.promise(async () =>
        fs.writeFile(trailing, Buffer.concat([await fs.readFile(file), Buffer.from("not gzip")]))
      )
      const handle = yield* openHandle(trailing)
      const pull = yield* childPull<never>(igzip, { _tag: "Descriptor", fd: handle.fd }, { name: "test" })
      expect((yield* drain(pull)).equals(plain)).toBe(true)
      const viaZlib = yield* gunzipPull((yield* recordingReader(trailing)).reader, { name: "test" })
      expect(((yield* Effect.flip(drain(viaZlib))) as Error).message).toMatch(/gzip: incorrect header check/)
    })
  )

  it.scopedLive("a fed child fails with its reader's error when a read fails mid-blob", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const { file } = yield* gzipFile(box.root)
      const recording = yield* recordingReader(file, 3)
      const pull = yield* childPull(igzip, { _tag: "Fed", reader: recording.reader }, { name: "test" })
      const error = yield* Effect.flip(drain(pull))
      expect(error).toBeInstanceOf(ReadFailed)
    })
  )

  it.scopedLive("closing the scope mid-stream kills the child and reaps it", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const { file } = yield* gzipFile(box.root)
      yield* Effect.scoped(
        Effect.gen(function* () {
          const handle = yield* openHandle(file)
          const pull = yield* childPull<never>(igzip, { _tag: "Descriptor", fd: handle.fd }, { name: "test" })
          expect((yield* pull.pull)?.length).toBeGreaterThan(0)
          expect(decompressorChildren()).toHaveLength(1)
        })
      )
      expect(decompressorChildren()).toEqual([])
    })
  )

  it.scopedLive("a decompressor that is not installed fails saying so", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const { file } = yield* gzipFile(box.root)
      const handle = yield* openHandle(file)
      const missing = { ...igzip, command: "banger-no-such-decompressor" }
      const pull = yield* childPull<never>(missing, { _tag: "Descriptor", fd: handle.fd }, { name: "test" })
      const error = yield* Effect.flip(drain(pull))
      expect(error).toMatchObject({ _tag: "FilesystemError" })
      expect(error.message).toMatch(/cannot run banger-no-such-decompressor \(is it installed\?\)/)
    })
  )
})

describe("gzipDecoder", () => {
  it("is igzip where it is on PATH, zlib without it or with BANGER_GZIP=zlib", () => {
    const saved = { PATH: process.env.PATH, BANGER_GZIP: process.env.BANGER_GZIP }
    try {
      delete process.env.BANGER_GZIP
      process.env.PATH = "/usr/local/bin:/usr/bin:/bin"
      expect(gzipDecoder()).toBe("igzip")
      process.env.BANGER_GZIP = "zlib"
      expect(gzipDecoder()).toBe("zlib")
      delete process.env.BANGER_GZIP
      process.env.PATH = "/nonexistent"
      expect(gzipDecoder()).toBe("zlib")
    } finally {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key]
        else process.env[key] = value
      }
    }
  })
})
