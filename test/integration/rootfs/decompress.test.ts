/**
 * gunzip over a blob reader: how far ahead of its consumer it reads, that it reuses two buffers,
 * and that a failing reader (a failed download) fails the output with the reader's error.
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { describe, expect, it } from "@effect/vitest"
import { Data, Effect } from "effect"
import { type BlobReader, fileReader } from "../../../src/layers/rootfs/blob-reader.js"
import { gunzipPull } from "../../../src/layers/rootfs/decompress.js"
import { sandbox } from "./harness.js"

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
