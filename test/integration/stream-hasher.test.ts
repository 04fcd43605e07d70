/**
 * The DiffID hasher with BANGER_DIGEST=openssl: an openssl child gives node's digests, whatever the
 * chunking, including bursts bigger than its pipe; a child that dies fails the digest in words;
 * closing the scope reaps it; and where it runs by default.
 */

import { execFileSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  diffIdHasher,
  digestHasher,
  type HashAlgorithm,
  type StreamHasher,
  streamHasher
} from "../../src/layers/host/stream-hasher.js"

const MiB = 1024 * 1024

/** Children of this test process named openssl. */
const opensslChildren = (): Array<number> => {
  try {
    return execFileSync("ps", ["-o", "pid=,comm=", "--ppid", String(process.pid)], { encoding: "utf8" })
      .split("\n")
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields[1] === "openssl")
      .map((fields) => Number(fields[0]))
  } catch {
    return []
  }
}

const feedAll = (hasher: StreamHasher, chunks: ReadonlyArray<Uint8Array>) =>
  Effect.gen(function* () {
    for (const chunk of chunks) if (!hasher.update(chunk)) yield* hasher.caughtUp
  })

describe("streamHasher (openssl dgst child)", () => {
  const saved = process.env.BANGER_DIGEST
  beforeAll(() => {
    process.env.BANGER_DIGEST = "openssl"
  })
  afterAll(() => {
    if (saved === undefined) delete process.env.BANGER_DIGEST
    else process.env.BANGER_DIGEST = saved
  })

  it.scopedLive("gives node's digest for sha256 and sha512, in small chunks and in bursts past its pipe", () =>
    Effect.gen(function* () {
      expect(diffIdHasher()).toBe("openssl")
      const data = randomBytes(6 * MiB)
      const chunkings = [
        [data],
        Array.from({ length: 96 }, (_, i) => data.subarray(i * 64 * 1024, (i + 1) * 64 * 1024)),
        [data.subarray(0, 1), data.subarray(1, 3 * MiB + 7), data.subarray(3 * MiB + 7)]
      ]
      for (const algorithm of ["sha256", "sha512"] as const satisfies ReadonlyArray<HashAlgorithm>) {
        const expected = createHash(algorithm).update(data).digest("hex")
        for (const chunks of chunkings) {
          const hasher = yield* streamHasher(algorithm)
          yield* feedAll(hasher, chunks)
          expect(yield* hasher.digest).toBe(expected)
        }
        const empty = yield* streamHasher(algorithm)
        expect(yield* empty.digest).toBe(createHash(algorithm).digest("hex"))
      }
    })
  )

  it.scopedLive("many at once each read their child's whole output, not just its exit", () =>
    Effect.gen(function* () {
      const inputs = Array.from({ length: 48 }, (_, i) => randomBytes(1024 + i))
      const digests = yield* Effect.forEach(
        inputs,
        (data) =>
          Effect.gen(function* () {
            const hasher = yield* streamHasher("sha256")
            yield* feedAll(hasher, [data])
            return yield* hasher.digest
          }),
        { concurrency: "unbounded" }
      )
      expect(digests).toEqual(inputs.map((data) => createHash("sha256").update(data).digest("hex")))
    })
  )

  it.scopedLive("a child that dies mid-stream fails the digest saying how", () =>
    Effect.gen(function* () {
      const hasher = yield* streamHasher("sha256")
      hasher.update(randomBytes(64 * 1024))
      const [pid] = opensslChildren()
      expect(pid).toBeGreaterThan(0)
      process.kill(pid!, "SIGKILL")
      yield* Effect.sleep("100 millis")
      yield* feedAll(hasher, [randomBytes(3 * MiB)])
      const error = yield* Effect.flip(hasher.digest)
      expect(error._tag).toBe("FilesystemError")
      expect(error.message).toMatch(/openssl dgst: was killed by SIGKILL/)
    })
  )

  it.live("closing the scope mid-stream kills and reaps the child", () =>
    Effect.gen(function* () {
      yield* Effect.scoped(
        Effect.gen(function* () {
          const hasher = yield* streamHasher("sha256")
          hasher.update(randomBytes(MiB))
          expect(opensslChildren()).toHaveLength(1)
        })
      )
      expect(opensslChildren()).toEqual([])
    })
  )

  it.scopedLive("hashes DiffIDs in-process by default, with BANGER_DIGEST=node, or without openssl on PATH", () =>
    Effect.gen(function* () {
      const saved = { PATH: process.env.PATH, BANGER_DIGEST: process.env.BANGER_DIGEST }
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          for (const [key, value] of Object.entries(saved)) {
            if (value === undefined) delete process.env[key]
            else process.env[key] = value
          }
        })
      )
      delete process.env.BANGER_DIGEST
      // Big blobs' digests go to openssl by default; DiffIDs stay in-process.
      expect([digestHasher(), diffIdHasher()]).toEqual(["openssl", "node"])
      process.env.BANGER_DIGEST = "node"
      expect([digestHasher(), diffIdHasher()]).toEqual(["node", "node"])
      process.env.BANGER_DIGEST = "openssl"
      process.env.PATH = "/nonexistent"
      expect([digestHasher(), diffIdHasher()]).toEqual(["node", "node"])
      const data = randomBytes(3 * MiB)
      const hasher = yield* streamHasher("sha256")
      yield* feedAll(hasher, [data])
      expect(yield* hasher.digest).toBe(createHash("sha256").update(data).digest("hex"))
      expect(opensslChildren()).toEqual([])
    })
  )
})
