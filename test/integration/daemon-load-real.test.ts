/**
 * The load test on the real path: a real `banger daemon` process, a real registry, four real
 * pulls of different images sharing a large base layer, and 50 clients issuing list/show over
 * the Unix socket the whole time. Bounded (it ends when the pulls do) and loopback only.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Chunk, Effect, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Image } from "../../src/domain/image.js"
import { withBangerDaemon } from "../support/banger-cli.js"
import { connect } from "../support/daemon-harness.js"
import { type BuiltLayer, buildLayer } from "../support/layers.js"
import { findCloudKernel } from "../support/qemu.js"
import { pushImage, startRegistry, type TestRegistry } from "../support/registry.js"
import { type RegistryProxy, startRegistryProxy } from "../support/registry-proxy.js"
import { leftovers, nothingLeft } from "../support/state-leftovers.js"

const CLIENTS = 50
const PULLS = 4

let registry: TestRegistry
/** In front of the registry, counting requests. */
let proxy: RegistryProxy
let work: string
let kernel: string
let base: BuiltLayer

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

beforeAll(async () => {
  registry = await startRegistry()
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-load-"))
  kernel = (await findCloudKernel()).kernel
  // 16 files of 1 MiB of distinct text: compressible, but big enough that the pulls overlap.
  base = await buildLayer(
    [
      { type: "directory", name: "base" },
      ...Array.from({ length: 16 }, (_, index) => ({
        type: "file" as const,
        name: `base/blob-${index}`,
        content: `${index}:`.repeat(1 << 19).slice(0, 1 << 20)
      }))
    ],
    "gzip"
  )
  for (let index = 0; index < PULLS; index++) {
    const own = await buildLayer([{ type: "file", name: `app-${index}`, content: `app ${index}\n` }], "zstd")
    await pushImage(registry, `app${index}`, "1", { layers: [base, own] })
  }
  await pushImage(registry, "seed", "1", {
    layers: [await buildLayer([{ type: "file", name: "seed", content: "seed\n" }], "gzip")]
  })
  proxy = await startRegistryProxy(registry)
}, 300_000)

afterAll(async () => {
  await proxy?.stop()
  await registry?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

describe("real daemon under load", () => {
  it(`${CLIENTS} clients list/show while ${PULLS} real pulls share a layer: no errors, no lost updates`, async () => {
    const state = path.join(work, "state")
    const report = await withBangerDaemon(state, (daemon) =>
      Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const admin = yield* connect(daemon.socket)
            const pullOf = (repository: string) =>
              admin.image.pull({
                reference: `${proxy.host}/${repository}:1`,
                name: repository,
                kernel: { _tag: "Paths", kernel }
              })
            const seed = yield* pullOf("seed")
            expect(yield* Stream.runLast(admin.op.watch({ id: seed.id })).pipe(Effect.map((last) => last._tag))).toBe(
              "Some"
            )

            const clients = yield* Effect.forEach(Array.from({ length: CLIENTS }), () => connect(daemon.socket))
            const begun = yield* Effect.forEach(Array.from({ length: PULLS }), (_, index) => pullOf(`app${index}`))
            let running = true
            const latencies: Array<number> = []
            const worker = (client: (typeof clients)[number]) =>
              Effect.gen(function* () {
                while (running) {
                  const started = performance.now()
                  const images = yield* client.image.list()
                  latencies.push(performance.now() - started)
                  expect(images.map((image) => image.name)).toContain("seed")
                  expect((yield* client.image.show({ name: "seed" })).name).toBe("seed")
                }
              })
            const watches = Effect.forEach(
              begun,
              (op) => Effect.map(Stream.runCollect(admin.op.watch({ id: op.id })), Chunk.toReadonlyArray),
              { concurrency: "unbounded" }
            ).pipe(Effect.ensuring(Effect.sync(() => (running = false))))
            const [updates] = yield* Effect.all(
              [watches, Effect.forEach(clients, worker, { concurrency: "unbounded" })],
              {
                concurrency: "unbounded"
              }
            )

            for (const history of updates) {
              const last = history.at(-1)!
              expect(last.state, JSON.stringify(last.error)).toBe("succeeded")
              const done = history.map((update) => update.progress.bytesDone)
              expect([...done].sort((a, b) => a - b)).toEqual(done)
              const image = last.result as Image
              expect(fs.statSync(image.rootfs).size).toBe(image.sizeBytes)
            }
            const names = ["app0", "app1", "app2", "app3", "seed"]
            for (const client of clients) {
              expect((yield* client.image.list()).map((image) => image.name)).toEqual(names)
            }
            const sorted = [...latencies].sort((a, b) => a - b)
            return {
              clients: CLIENTS,
              pulls: PULLS,
              listCalls: sorted.length,
              p50ms: Number(percentile(sorted, 50).toFixed(1)),
              p99ms: Number(percentile(sorted, 99).toFixed(1)),
              maxms: Number(sorted.at(-1)!.toFixed(1))
            }
          })
        )
      )
    )
    console.log(`[daemon-load-real] image.list latency: ${JSON.stringify(report)}`)
    expect(report.listCalls).toBeGreaterThan(CLIENTS)
    // Four concurrent pulls, one download of the layer they share. A request retried after a
    // dropped connection (a keep-alive socket closed under it) is the same download resumed, so
    // what counts is the bytes: one layer's worth, not four.
    const baseGets = proxy.requests.filter((request) => request.method === "GET" && request.path.endsWith(base.digest))
    const baseBytes = baseGets.reduce((sum, request) => sum + (request.bytesSent ?? 0), 0)
    expect(baseBytes, JSON.stringify(baseGets)).toBeGreaterThanOrEqual(base.blob.length)
    expect(baseBytes, JSON.stringify(baseGets)).toBeLessThan(2 * base.blob.length)
    expect(
      baseGets.filter((request) => request.status === 200),
      JSON.stringify(baseGets)
    ).toHaveLength(1)
    expect(fs.existsSync(path.join(state, "cache/blobs", ...base.digest.split(":")))).toBe(true)
    expect(leftovers(state)).toEqual(nothingLeft)
  }, 600_000)
})
