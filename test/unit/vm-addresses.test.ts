/**
 * Address leases on a real SQLite file: many creates at once never share a /30, the pool's end is
 * a typed error, and a freed address is the next one given.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import { formatIpv4, parseCidr, poolRange } from "../../src/layers/network/address.js"
import { StatePaths } from "../../src/layers/state/state-paths.js"
import { Store } from "../../src/layers/store/store.js"

const pool = Either.getOrThrow(parseCidr("10.213.0.0/26"))
const range = { ...poolRange(pool), label: "10.213.0.0/26" }

const withStore = <A, E>(body: Effect.Effect<A, E, Store>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "banger-leases-"))),
    (root) => body.pipe(Effect.provide(Store.layer.pipe(Layer.provide(StatePaths.layer(path.join(root, "state")))))),
    (root) => Effect.sync(() => fs.rmSync(root, { recursive: true, force: true }))
  )

describe("Store.addresses", () => {
  it.live(
    "concurrent allocations never collide; the pool's end is AddressPoolExhausted; freed addresses come back",
    () =>
      withStore(
        Effect.gen(function* () {
          const store = yield* Store
          // 16 /30s in a /26; 40 creates at once.
          const results = yield* Effect.all(
            Array.from({ length: 40 }, (_, i) => Effect.either(store.addresses.allocate(`vm${i}`, range))),
            { concurrency: "unbounded" }
          )
          const bases = results.flatMap((result) => (Either.isRight(result) ? [result.right] : []))
          const failures = results.flatMap((result) => (Either.isLeft(result) ? [result.left] : []))
          expect(bases).toHaveLength(16)
          expect(new Set(bases).size).toBe(16)
          expect([...bases].sort((a, b) => a - b).map(formatIpv4)).toEqual(
            Array.from({ length: 16 }, (_, i) => `10.213.0.${i * 4}`)
          )
          expect(failures).toHaveLength(24)
          expect(failures.every((error) => error._tag === "AddressPoolExhausted")).toBe(true)
          expect(failures[0]!.message).toBe(
            "no free address in 10.213.0.0/26: every /30 is held by a VM: delete one, or restart the daemon with a larger --subnet"
          )

          // The lowest freed /30 is the next one leased; a lease outside the pool never counts.
          const holder = (yield* store.addresses.list).find((lease) => formatIpv4(lease.base) === "10.213.0.20")!
          expect(yield* store.addresses.release(holder.vmId)).toBe(true)
          expect(yield* store.addresses.release(holder.vmId)).toBe(false)
          expect(formatIpv4(yield* store.addresses.allocate("again", range))).toBe("10.213.0.20")
          const other = Either.getOrThrow(parseCidr("10.214.0.0/30"))
          expect(formatIpv4(yield* store.addresses.allocate("elsewhere", { ...poolRange(other), label: "x" }))).toBe(
            "10.214.0.0"
          )
          // Leases of no VM row (creates that never finished) are all orphans here.
          expect((yield* store.addresses.releaseOrphans).length).toBe(17)
          expect(yield* store.addresses.list).toEqual([])
        })
      )
  )
})
