/**
 * A blob read while it downloads: the reader follows the bytes the downloader reports written,
 * waits for more, ends once all of them are read (whether or not the download has passed its
 * verdict yet) and fails with the download's failure.
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { DigestMismatch } from "../../../src/domain/errors.js"
import { GrowingBlob } from "../../../src/layers/rootfs/growing-blob.js"
import { sandbox } from "./harness.js"

const KiB = 1024

/** Reads with a 16 KiB buffer until the reader gives 0: the bytes read. */
const readAll = (blob: GrowingBlob) =>
  Effect.gen(function* () {
    const reader = yield* blob.reader()
    const buffer = new Uint8Array(16 * KiB)
    const parts: Array<Buffer> = []
    while (true) {
      const count = yield* reader.read(buffer)
      if (count === 0) return Buffer.concat(parts)
      parts.push(Buffer.from(buffer.subarray(0, count)))
    }
  })

describe("GrowingBlob", () => {
  it.scopedLive("is read as it is written, to its end before the download's verdict", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const bytes = randomBytes(100 * KiB)
      const temp = path.join(box.blobs, "blob.tmp")
      yield* Effect.promise(() => fs.writeFile(temp, bytes.subarray(0, 40 * KiB)))
      const blob = new GrowingBlob(bytes.length)
      yield* blob.started(temp)
      yield* blob.progress(40 * KiB)
      const reading = yield* Effect.fork(Effect.scoped(readAll(blob)))
      yield* Effect.sleep("50 millis")
      // Waiting for more, not ended: 40 of 100 KiB are there.
      expect(reading.unsafePoll()).toBeNull()
      yield* Effect.promise(() => fs.appendFile(temp, bytes.subarray(40 * KiB)))
      yield* blob.progress(bytes.length)
      // Every byte is written: the reader ends while the download is still checking (no `finish`).
      const read = yield* Fiber.join(reading).pipe(Effect.timeout("5 seconds"))
      expect(read.equals(bytes)).toBe(true)
      const verdict = yield* Effect.fork(blob.done)
      yield* Effect.sleep("20 millis")
      expect(verdict.unsafePoll()).toBeNull()
      yield* blob.finish(Exit.succeed(temp))
      expect(yield* Fiber.join(verdict)).toBe(temp)
    })
  )

  it.scopedLive("fails a waiting reader with the download's failure", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const temp = path.join(box.blobs, "blob.tmp")
      yield* Effect.promise(() => fs.writeFile(temp, randomBytes(10 * KiB)))
      const blob = new GrowingBlob(100 * KiB)
      yield* blob.started(temp)
      yield* blob.progress(10 * KiB)
      const reading = yield* Effect.fork(Effect.scoped(readAll(blob)))
      yield* Effect.sleep("50 millis")
      const failure = new DigestMismatch({
        expected: "sha256:a",
        actual: "sha256:b",
        reason: "downloaded blob is corrupt"
      })
      yield* blob.finish(Exit.fail(failure))
      const exit = yield* Fiber.await(reading).pipe(Effect.timeout("5 seconds"))
      expect(exit).toEqual(Exit.fail(failure))
    })
  )
})
