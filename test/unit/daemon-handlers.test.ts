import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, type Duration, Effect, Fiber, Layer, Option, Schedule, Stream } from "effect"
import { GC_DELAY_MS } from "../../src/daemon/collect-garbage.js"
import { Operations } from "../../src/daemon/operations.js"
import { Ext4Error, ImageNotFound, OperationFailed } from "../../src/domain/errors.js"
import { Image, Kernel } from "../../src/domain/image.js"
import { ClientFiles } from "../../src/layers/client-files/client-files.js"
import { HostProbe } from "../../src/layers/host/host-probe.js"
import { OperationStore } from "../../src/layers/store/operation-store.js"
import { pullImage } from "../../src/pipelines/pull/pull.js"
import { recoverState } from "../../src/pipelines/pull/recover.js"
import { emptyProgress, OperationStatus } from "../../src/rpc/schemas.js"
import { fakePull, handlerClient, listDir, tempDir, testServices, writeKernel } from "../support/daemon-harness.js"
import { type Calls, ext4Fake, mockedPullServices, newCalls } from "../support/mock-layers.js"

const setup = Effect.gen(function* () {
  const dir = yield* tempDir()
  return { dir, stateDir: path.join(dir, "state"), kernel: writeKernel(dir) }
})

/** The real pull pipeline over mocked registry, blob cache, rootfs and ext4 (see mock-layers). */
const mockedPipeline = (stateDir: string, calls: Calls, ext4 = ext4Fake(calls)) => {
  const services = Layer.mergeAll(
    mockedPullServices(stateDir, calls, ext4),
    HostProbe.layer.pipe(Layer.provide(NodeContext.layer)),
    ClientFiles.layer
  )
  return Layer.merge(services, Layer.effectDiscard(recoverState()).pipe(Layer.provide(services)))
}

const lastOf = <A, E, R>(stream: Stream.Stream<A, E, R>) =>
  Effect.map(Stream.runCollect(stream), (chunk) => Chunk.toReadonlyArray(chunk).at(-1)!)

const waitUntil = (check: Effect.Effect<boolean>) =>
  Effect.gen(function* () {
    while (!(yield* check)) yield* Effect.sleep("10 millis")
  }).pipe(Effect.timeout("10 seconds"), Effect.orDie)

describe("daemon handlers (RpcTest client)", () => {
  it.live("image.pull begins an operation at once; op.watch streams it to the published image", () =>
    Effect.gen(function* () {
      const { stateDir, kernel } = yield* setup
      const { client } = yield* handlerClient(stateDir, testServices(stateDir), fakePull({ steps: 10 }))
      const begun = yield* client.image.pull({ reference: "debian:bookworm", kernel: { _tag: "Paths", kernel } })
      expect(begun).toMatchObject({ kind: "image.pull", target: "debian-bookworm", state: "running", endedAt: null })
      const updates = Chunk.toReadonlyArray(yield* Stream.runCollect(client.op.watch({ id: begun.id })))
      const final = updates.at(-1)!
      expect(final.state).toBe("succeeded")
      expect(final.result?.name).toBe("debian-bookworm")
      expect(final.progress).toMatchObject({ layerCount: 2, bytesDone: 2000, bytesTotal: 2000 })
      expect(updates.filter((update) => update.state !== "running")).toHaveLength(1)
      expect(new Set(updates.map((update) => update.stage))).toContain("fetch")
      expect((yield* client.image.list()).map((image) => image.name)).toEqual(["debian-bookworm"])
      expect((yield* client.op.status({ id: begun.id })).state).toBe("succeeded")
      expect((yield* client.op.list()).map((op) => op.id)).toEqual([begun.id])
    }).pipe(Effect.scoped)
  )

  it.live("a second pull of a name being pulled fails at once with ImageNameTaken; the first wins", () =>
    Effect.gen(function* () {
      const { stateDir, kernel } = yield* setup
      const { client } = yield* handlerClient(stateDir, testServices(stateDir), fakePull({ steps: 10 }))
      const first = yield* client.image.pull({ reference: "debian", kernel: { _tag: "Paths", kernel } })
      const second = yield* Effect.flip(
        client.image.pull({ reference: "other", name: "debian-latest", kernel: { _tag: "Paths", kernel } })
      )
      expect(second._tag).toBe("ImageNameTaken")
      expect(second.message).toContain(`operation ${first.id}`)
      expect((yield* lastOf(client.op.watch({ id: first.id }))).state).toBe("succeeded")
      // Once published, the store keeps the name taken.
      const third = yield* Effect.flip(client.image.pull({ reference: "debian", kernel: { _tag: "Paths", kernel } }))
      expect(third._tag).toBe("ImageNameTaken")
      expect((yield* client.op.list()).map((op) => op.id)).toEqual([first.id])
    }).pipe(Effect.scoped)
  )

  it.live("pulls of different names run concurrently", () =>
    Effect.gen(function* () {
      const overlap = { current: 0, max: 0 }
      const { stateDir, kernel } = yield* setup
      const { client } = yield* handlerClient(
        stateDir,
        testServices(stateDir),
        fakePull({ steps: 25, stepDelay: "20 millis", overlap })
      )
      const begun = yield* Effect.forEach(["a", "b", "c", "d"], (name) =>
        client.image.pull({ reference: "debian", name, kernel: { _tag: "Paths", kernel } })
      )
      const finals = yield* Effect.forEach(begun, (op) => lastOf(client.op.watch({ id: op.id })), {
        concurrency: "unbounded"
      })
      expect(finals.map((op) => op.state)).toEqual(["succeeded", "succeeded", "succeeded", "succeeded"])
      // Each pull spends 2 × 25 × 20 ms in its fetch stage: all four were there at once.
      expect(overlap.max).toBe(4)
      expect((yield* client.image.list()).map((image) => image.name)).toEqual(["a", "b", "c", "d"])
    }).pipe(Effect.scoped)
  )

  it.live("bad input fails the image.pull call itself and leaves no operation and no reservation", () =>
    Effect.gen(function* () {
      const { stateDir, kernel } = yield* setup
      const { client } = yield* handlerClient(stateDir, testServices(stateDir), fakePull())
      expect((yield* Effect.flip(client.image.pull({ reference: "Debian" })))._tag).toBe("InvalidReference")
      expect((yield* Effect.flip(client.image.pull({ reference: "debian", name: "../x" })))._tag).toBe("InvalidName")
      const noKernel = yield* Effect.flip(client.image.pull({ reference: "debian" }))
      expect(noKernel._tag).toBe("KernelMissing")
      expect(yield* client.op.list()).toEqual([])
      // The failed attempt released the name it had reserved.
      const ok = yield* client.image.pull({ reference: "debian", kernel: { _tag: "Paths", kernel } })
      expect((yield* lastOf(client.op.watch({ id: ok.id }))).state).toBe("succeeded")
    }).pipe(Effect.scoped)
  )

  it.live("unknown operations and images fail with their domain errors", () =>
    Effect.gen(function* () {
      const { stateDir } = yield* setup
      const { client } = yield* handlerClient(stateDir, testServices(stateDir), fakePull())
      expect((yield* Effect.flip(client.op.status({ id: "nope" })))._tag).toBe("OperationNotFound")
      expect((yield* Effect.flip(client.op.cancel({ id: "nope" })))._tag).toBe("OperationNotFound")
      expect((yield* Effect.flip(Stream.runDrain(client.op.watch({ id: "nope" }))))._tag).toBe("OperationNotFound")
      const missing = yield* Effect.flip(client.image.show({ name: "ghost" }))
      expect(missing).toBeInstanceOf(ImageNotFound)
      expect((yield* Effect.flip(client.kernel.delete({ name: "ghost" })))._tag).toBe("KernelNotFound")
    }).pipe(Effect.scoped)
  )

  it.live("the real pipeline, cancelled in mkfs: staging dir, image and row are rolled back", () =>
    Effect.gen(function* () {
      const { stateDir, kernel } = yield* setup
      const calls = newCalls()
      const services = mockedPipeline(stateDir, calls, ext4Fake(calls, { delay: Effect.never }))
      const { client } = yield* handlerClient(stateDir, services, pullImage)
      const begun = yield* client.image.pull({ reference: "debian", kernel: { _tag: "Paths", kernel } })
      yield* waitUntil(Effect.sync(() => calls.build.length > 0))
      const staging = listDir(path.join(stateDir, "images")).filter((name) => name.endsWith(".staging"))
      expect(staging).toHaveLength(1)
      // Contents go straight into the image being written: nothing in tmp.
      expect(listDir(path.join(stateDir, "images", staging[0]!))).toContain("rootfs.ext4")
      expect(listDir(path.join(stateDir, "tmp"))).toEqual([])
      const cancelled = yield* client.op.cancel({ id: begun.id })
      expect(cancelled.state).toBe("cancelled")
      expect(cancelled.stage).toBe("write-ext4")
      expect(cancelled.error?._tag).toBe("OperationCancelled")
      expect(listDir(path.join(stateDir, "images"))).toEqual([])
      expect(listDir(path.join(stateDir, "tmp"))).toEqual([])
      expect(yield* client.image.list()).toEqual([])
      // Cancelling again answers the final status.
      expect((yield* client.op.cancel({ id: begun.id })).state).toBe("cancelled")
    }).pipe(Effect.scoped)
  )

  it.live("the real pipeline failing in mkfs: the operation fails with the pipeline's own error", () =>
    Effect.gen(function* () {
      const { stateDir, kernel } = yield* setup
      const calls = newCalls()
      const services = mockedPipeline(stateDir, calls, ext4Fake(calls, { fail: true }))
      const { client } = yield* handlerClient(stateDir, services, pullImage)
      const begun = yield* client.image.pull({ reference: "debian", kernel: { _tag: "Paths", kernel } })
      const final = yield* lastOf(client.op.watch({ id: begun.id }))
      expect(final.state).toBe("failed")
      expect(final.error).toBeInstanceOf(Ext4Error)
      expect(final.error?.message).toBe(
        new Ext4Error({ tool: "ext4 writer", reason: "no space left", stderr: "" }).message
      )
      expect(listDir(path.join(stateDir, "images"))).toEqual([])
    }).pipe(Effect.scoped)
  )

  it.live("finished operations are pruned after the TTL", () =>
    Effect.gen(function* () {
      const { stateDir, kernel } = yield* setup
      const { client } = yield* handlerClient(stateDir, testServices(stateDir), fakePull({ steps: 1 }), {
        operationTtl: "300 millis",
        pruneEvery: "50 millis"
      })
      const begun = yield* client.image.pull({ reference: "debian", kernel: { _tag: "Paths", kernel } })
      expect((yield* lastOf(client.op.watch({ id: begun.id }))).state).toBe("succeeded")
      expect((yield* client.op.status({ id: begun.id })).state).toBe("succeeded")
      yield* Effect.sleep("700 millis")
      expect((yield* Effect.flip(client.op.status({ id: begun.id })))._tag).toBe("OperationNotFound")
      expect(yield* client.op.list()).toEqual([])
      // Pruning drops the record, never the image.
      expect((yield* client.image.list()).map((image) => image.name)).toEqual(["debian-latest"])
    }).pipe(Effect.scoped)
  )

  it.live("shutdown interrupts running operations: rolled back and recorded failed", () =>
    Effect.gen(function* () {
      const { stateDir, kernel } = yield* setup
      const { client, operations } = yield* handlerClient(stateDir, testServices(stateDir), fakePull({ steps: 500 }))
      const begun = yield* client.image.pull({ reference: "debian", kernel: { _tag: "Paths", kernel } })
      yield* waitUntil(Effect.map(Effect.orDie(client.op.status({ id: begun.id })), (s) => s.progress.bytesDone > 0))
      yield* operations.shutdown
      const final = yield* client.op.status({ id: begun.id })
      expect(final.state).toBe("failed")
      expect(final.error?.message).toContain("daemon stopped")
      expect(listDir(path.join(stateDir, "images"))).toEqual([])
      expect((yield* Effect.flip(client.image.pull({ reference: "x", kernel: { _tag: "Paths", kernel } })))._tag).toBe(
        "OperationFailed"
      )
    }).pipe(Effect.scoped)
  )
})

describe("Operations", () => {
  const image = (name: string) =>
    new Image({
      id: "id",
      name,
      ref: null,
      manifestDigest: null,
      platform: null,
      managed: true,
      rootfs: "/r",
      kernel: "/k",
      initrd: null,
      modules: null,
      sizeBytes: 1,
      createdAt: "2026-01-01T00:00:00.000Z"
    })
  const operationsIn = (ttl: Duration.DurationInput = "1 hour") =>
    Operations.layer({ ttl }).pipe(Layer.provideMerge(OperationStore.layerMemory))

  it.live("a cancel landing in an uninterruptible commit reports what was committed", () =>
    Effect.gen(function* () {
      const operations = yield* Operations
      const begun = yield* operations.begin({
        kind: "image.pull",
        target: "late",
        run: () => Effect.uninterruptible(Effect.as(Effect.sleep("200 millis"), image("late"))),
        settleInterrupted: Effect.succeed(Option.some(image("late")))
      })
      yield* Effect.sleep("50 millis")
      const final = yield* operations.cancel(begun.id)
      expect(final.state).toBe("succeeded")
      expect(final.result?.name).toBe("late")
    }).pipe(Effect.provide(operationsIn()), Effect.scoped)
  )

  it.live("every operation that ends, however it ends, is followed by two full GCs when node exposes gc", () =>
    Effect.gen(function* () {
      const holder = globalThis as { gc?: () => void }
      const exposed = holder.gc
      let collections = 0
      holder.gc = () => void collections++
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          holder.gc = exposed
        })
      )
      const operations = yield* Operations
      // Until the status is final, then the scheduled GC's delay and a moment more.
      const ended = (id: string) =>
        operations
          .status(id)
          .pipe(
            Effect.repeat({ until: (status) => status.state !== "running", schedule: Schedule.spaced("5 millis") }),
            Effect.zipRight(Effect.sleep(GC_DELAY_MS + 150))
          )
      yield* Effect.flatMap(
        operations.begin({ kind: "image.pull", target: "a", run: () => Effect.succeed(image("a")) }),
        (begun) => ended(begun.id)
      )
      // The second gives back the pages the first emptied (collect-garbage.ts).
      expect(collections).toBe(2)
      yield* Effect.flatMap(
        operations.begin({
          kind: "image.pull",
          target: "b",
          run: () => Effect.fail(new OperationFailed({ id: "b", reason: "no" }))
        }),
        (begun) => ended(begun.id)
      )
      expect(collections).toBe(4)
    }).pipe(Effect.provide(operationsIn()), Effect.scoped)
  )

  it.live("operations a dead daemon left running are marked failed on start", () =>
    Effect.gen(function* () {
      const store = yield* OperationStore
      yield* store.save(
        new OperationStatus({
          id: "orphan",
          kind: "image.pull",
          target: "x",
          state: "running",
          stage: "fetch",
          progress: emptyProgress,
          result: null,
          error: null,
          startedAt: "2026-01-01T00:00:00.000Z",
          endedAt: null
        })
      )
      const status = yield* Effect.flatMap(Operations, (operations) => operations.status("orphan")).pipe(
        Effect.provide(Operations.layer({ ttl: "1 hour" }))
      )
      expect(status.state).toBe("failed")
      expect(status.stage).toBe("fetch")
      expect(status.error?._tag).toBe("OperationFailed")
      expect(status.endedAt).not.toBeNull()
    }).pipe(Effect.provide(OperationStore.layerMemory), Effect.scoped)
  )

  it.live("watch of a finished operation yields its final status once", () =>
    Effect.gen(function* () {
      const operations = yield* Operations
      const begun = yield* operations.begin({ kind: "image.pull", target: "t", run: () => Effect.succeed(image("t")) })
      const fiber = yield* Effect.fork(lastOf(operations.watch(begun.id)))
      expect((yield* Fiber.join(fiber)).state).toBe("succeeded")
      const again = Chunk.toReadonlyArray(yield* Stream.runCollect(operations.watch(begun.id)))
      expect(again.map((status) => status.state)).toEqual(["succeeded"])
    }).pipe(Effect.provide(operationsIn()), Effect.scoped)
  )

  it.live("a new phase starts with no stage: the last phase's final stage is not replayed as its own", () =>
    Effect.gen(function* () {
      const operations = yield* Operations
      const gate = yield* Deferred.make<void>()
      const begun = yield* operations.begin({
        kind: "image.pull",
        target: "t",
        run: (progress) =>
          Effect.gen(function* () {
            yield* progress.report({ _tag: "PhaseStarted", phase: "kernel", name: "k" })
            yield* progress.report({ _tag: "StageStarted", stage: "publish" })
            yield* progress.report({ _tag: "PhaseStarted", phase: "image", name: "t" })
            yield* Deferred.await(gate)
            yield* progress.report({ _tag: "StageStarted", stage: "resolve" })
            return image("t")
          })
      })
      const statuses = yield* Effect.fork(Stream.runCollect(operations.watch(begun.id)))
      yield* waitUntil(
        Effect.map(operations.status(begun.id), (status) => status.phase?.phase === "image").pipe(Effect.orDie)
      )
      expect(yield* operations.status(begun.id)).toMatchObject({ phase: { phase: "image", name: "t" }, stage: null })
      yield* Deferred.succeed(gate, undefined)
      const seen = Chunk.toReadonlyArray(yield* Fiber.join(statuses))
      const imagePhase = seen.filter((status) => status.phase?.phase === "image").map((status) => status.stage)
      expect(imagePhase).not.toContain("publish")
      expect(imagePhase.at(-1)).toBe("resolve")
    }).pipe(Effect.provide(operationsIn()), Effect.scoped)
  )
})

describe("kernel handlers (RpcTest client)", () => {
  it.live(
    "kernel.pull runs as an operation whose result decodes as a Kernel; image.pull checks stored kernel names up front",
    () =>
      Effect.gen(function* () {
        const { stateDir } = yield* setup
        const { client } = yield* handlerClient(stateDir, testServices(stateDir), fakePull({ steps: 2 }))
        const begun = yield* client.kernel.pull({ reference: "example.test/kernels/k:1", name: "k" })
        expect(begun).toMatchObject({ kind: "kernel.pull", target: "k", state: "running" })
        const final = yield* lastOf(client.op.watch({ id: begun.id }))
        expect(final.state).toBe("succeeded")
        expect(final.result).toBeInstanceOf(Kernel)
        expect(final.phase).toEqual({ phase: "kernel", name: "k" })
        const taken = yield* Effect.flip(client.kernel.pull({ reference: "example.test/kernels/k:1", name: "k" }))
        expect(taken._tag).toBe("KernelNameTaken")

        const pulled = yield* client.image.pull({ reference: "debian", kernel: { _tag: "Stored", name: "k" } })
        expect((yield* lastOf(client.op.watch({ id: pulled.id }))).state).toBe("succeeded")
        const missing = yield* Effect.flip(
          client.image.pull({ reference: "debian", name: "x", kernel: { _tag: "Stored", name: "nope" } })
        )
        expect(missing._tag).toBe("KernelNotFound")
      }).pipe(Effect.scoped)
  )
})
