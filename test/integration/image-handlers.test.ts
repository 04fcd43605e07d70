/**
 * The image.register / image.promote / image.delete handlers over real services (state dir,
 * SQLite, GNU cp, mkfs.ext4-made rootfs), with the promote's copy held open: what another call
 * sees while an operation holds an image, and what a cancel leaves.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, Layer, Stream } from "effect"
import { DiskCopy } from "../../src/layers/disk/disk-copy.js"
import { Ext4Tools } from "../../src/layers/ext4/ext4-tools.js"
import { fakePull, handlerClient, listDir, tempDir, testServices } from "../support/daemon-harness.js"
import { findCloudKernel } from "../support/qemu.js"

const lastOf = <A, E, R>(stream: Stream.Stream<A, E, R>) =>
  Effect.map(Stream.runCollect(stream), (chunk) => Chunk.toReadonlyArray(chunk).at(-1)!)

/** DiskCopy's real copy, then held open until cancelled; `copying` is completed once it is held. */
const heldCopyLayer = (copying: Deferred.Deferred<void>) =>
  Layer.effect(
    DiskCopy,
    Effect.map(DiskCopy, (real) => ({
      ...real,
      copy: (from: string, to: string) =>
        Effect.zipRight(real.copy(from, to), Effect.zipRight(Deferred.succeed(copying, undefined), Effect.never))
    }))
  ).pipe(Layer.provide(DiskCopy.layer), Layer.provide(NodeContext.layer))

describe("image handlers (RpcTest client, real services)", () => {
  it.live("a promote holds its image: delete and a second promote are refused; cancel leaves it unmanaged", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("bgh-")
      const stateDir = path.join(dir, "state")
      const rootfs = path.join(dir, "mine.ext4")
      execFileSync("mkfs.ext4", ["-q", "-F", rootfs, "32M"], { stdio: "pipe" })
      const { kernel } = yield* Effect.promise(() => findCloudKernel())
      const copying = yield* Deferred.make<void>()
      const services = Layer.merge(testServices(stateDir), heldCopyLayer(copying))
      const { client } = yield* handlerClient(stateDir, services, fakePull())

      const begun = yield* client.image.register({ name: "mine", rootfs, kernel: { _tag: "Paths", kernel } })
      expect(begun).toMatchObject({ kind: "image.register", target: "mine", state: "running" })
      const registered = yield* lastOf(client.op.watch({ id: begun.id }))
      expect(registered.state).toBe("succeeded")
      const image = registered.result!
      expect(image).toMatchObject({ name: "mine", managed: false, rootfs, kernel })

      const promoting = yield* client.image.promote({ name: "mine" })
      expect(promoting).toMatchObject({ kind: "image.promote", target: "mine", state: "running" })
      yield* Deferred.await(copying)
      const busy = yield* Effect.flip(client.image.delete({ name: "mine" }))
      expect(busy.message).toBe(`image "mine" is busy: another operation is working on it (operation ${promoting.id})`)
      const again = yield* Effect.flip(client.image.promote({ name: "mine" }))
      expect(again._tag).toBe("ImageBusy")
      // A register of the same name is refused the way two pulls of one name are.
      const taken = yield* Effect.flip(
        client.image.register({ name: "mine", rootfs, kernel: { _tag: "Paths", kernel } })
      )
      expect(taken._tag).toBe("ImageNameTaken")

      const cancelled = yield* client.op.cancel({ id: promoting.id })
      expect(cancelled).toMatchObject({ state: "cancelled", stage: "copy" })
      expect(listDir(path.join(stateDir, "images"))).toEqual([])
      expect(yield* client.image.show({ name: "mine" })).toEqual(image)
      // The name is free again: the image can be deleted, and its file stays.
      expect((yield* client.image.delete({ name: "mine" })).name).toBe("mine")
      expect(fs.statSync(rootfs).size).toBe(32 * 1024 * 1024)
      expect(yield* client.image.list()).toEqual([])
    }).pipe(Effect.scoped)
  )

  it.live("a VM create holds its image: delete and promote are refused while it runs, other creates share it", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("bgh-")
      const stateDir = path.join(dir, "state")
      const rootfs = path.join(dir, "mine.ext4")
      execFileSync("mkfs.ext4", ["-q", "-F", rootfs, "32M"], { stdio: "pipe" })
      const { kernel } = yield* Effect.promise(() => findCloudKernel())
      const repairing = yield* Deferred.make<void>()
      // The work disk's repair (after its copy of the image), held open until cancelled.
      const heldRepair = Layer.effect(
        Ext4Tools,
        Effect.map(Ext4Tools, (real) => ({
          ...real,
          repair: () => Effect.zipRight(Deferred.succeed(repairing, undefined), Effect.never)
        }))
      ).pipe(Layer.provide(Ext4Tools.layer), Layer.provide(NodeContext.layer))
      const services = Layer.merge(testServices(stateDir), heldRepair)
      const { client } = yield* handlerClient(stateDir, services, fakePull())

      const begun = yield* client.image.register({ name: "mine", rootfs, kernel: { _tag: "Paths", kernel } })
      expect((yield* lastOf(client.op.watch({ id: begun.id }))).state).toBe("succeeded")

      // Held in making its work disk: the image is being read.
      const creating = yield* client.vm.create({ name: "one", image: "mine", network: false, start: true })
      expect(creating).toMatchObject({ kind: "vm.create", target: "one", state: "running" })
      yield* Deferred.await(repairing)
      const busy = yield* Effect.flip(client.image.delete({ name: "mine" }))
      expect(busy.message).toBe(`image "mine" is busy: another operation is working on it (operation ${creating.id})`)
      expect((yield* Effect.flip(client.image.promote({ name: "mine" })))._tag).toBe("ImageBusy")
      // A second create of the same image is not refused for it.
      const second = yield* client.vm.create({ name: "two", image: "mine", network: false, start: true })
      expect(second.state).toBe("running")

      for (const operation of [creating, second]) {
        expect((yield* client.op.cancel({ id: operation.id })).state).toBe("cancelled")
      }
      // Both creates gone: the image is free, and deleting it works.
      expect((yield* client.image.delete({ name: "mine" })).name).toBe("mine")
      expect(yield* client.image.list()).toEqual([])
      expect(yield* client.vm.list()).toEqual([])
    }).pipe(Effect.scoped)
  )
})
