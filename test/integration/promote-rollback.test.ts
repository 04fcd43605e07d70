/**
 * Promote's rollback, on the real pipeline over a real state dir, SQLite file and GNU cp: the copy
 * is made to pause, or the world to change, at a chosen point, which the CLI cannot time reliably.
 */
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Option } from "effect"
import { DiskCopy } from "../../src/layers/disk/disk-copy.js"
import { StatePaths } from "../../src/layers/state/state-paths.js"
import { Store } from "../../src/layers/store/store.js"
import { DefaultCatalogPath } from "../../src/pipelines/catalog/load-catalog.js"
import { promoteImage } from "../../src/pipelines/image/promote.js"
import { registerImage } from "../../src/pipelines/image/register.js"
import { LEASE_FILE } from "../../src/pipelines/pull/lease.js"
import { PullProgress } from "../../src/pipelines/pull/progress.js"
import { recoverState } from "../../src/pipelines/pull/recover.js"
import { listDir, tempDir, testServices } from "../support/daemon-harness.js"
import { findCloudKernel } from "../support/qemu.js"

/** The real DiskCopy, then `after` once a copy of the file named `rootfs.ext4` is complete. */
const diskCopyThen = (after: Effect.Effect<void>) =>
  Layer.effect(
    DiskCopy,
    Effect.map(DiskCopy, (real) => ({
      ...real,
      copy: (from: string, to: string) =>
        Effect.zipRight(real.copy(from, to), path.basename(to) === "rootfs.ext4" ? after : Effect.void)
    }))
  ).pipe(Layer.provide(DiskCopy.layer), Layer.provide(NodeContext.layer))

const setup = (after: (env: { rootfs: string; store: Store["Type"] }) => Effect.Effect<void>) =>
  Effect.gen(function* () {
    const dir = yield* tempDir("bgp-")
    const stateDir = path.join(dir, "state")
    const rootfs = path.join(dir, "mine.ext4")
    execFileSync("mkfs.ext4", ["-q", "-F", rootfs, "32M"], { stdio: "pipe" })
    const { kernel } = yield* Effect.promise(() => findCloudKernel())
    const paths = StatePaths.layer(stateDir)
    const store = Store.layer.pipe(Layer.provide(paths))
    const disk = Layer.unwrapEffect(Effect.map(Store, (handle) => diskCopyThen(after({ rootfs, store: handle })))).pipe(
      Layer.provide(store)
    )
    // The state's real services, with the copy wrapped (last in the merge, so it wins).
    const services = Layer.mergeAll(
      testServices(stateDir),
      DefaultCatalogPath.layer(path.join(stateDir, "no-catalog.json")),
      PullProgress.silent,
      disk
    )
    const context = yield* Layer.build(services)
    const registered = yield* registerImage({ name: "mine", rootfs, kernel: { _tag: "Paths", kernel } }).pipe(
      Effect.provide(context)
    )
    const images = path.join(stateDir, "images")
    const row = Effect.flatMap(Store, (handle) => handle.images.find("mine")).pipe(Effect.provide(context))
    return {
      rootfs,
      images,
      registered,
      row,
      promote: promoteImage("mine").pipe(Effect.provide(context)),
      recover: recoverState().pipe(Effect.provide(context))
    }
  })

const failureOf = <A, E>(exit: Exit.Exit<A, E>) =>
  Option.getOrThrow(Cause.failureOption(Exit.causeOption(exit).pipe(Option.getOrThrow)))

describe("image promote rollback", () => {
  it.live("cancelled mid-copy: the staging dir goes, the row and the source stay as they were", () =>
    Effect.gen(function* () {
      const copied = yield* Deferred.make<void>()
      const env = yield* setup(() => Effect.zipRight(Deferred.succeed(copied, undefined), Effect.never))
      const sourceBytes = fs.readFileSync(env.rootfs)
      const fiber = yield* Effect.fork(env.promote)
      yield* Deferred.await(copied)
      const staging = listDir(env.images).filter((name) => name.endsWith(".staging"))
      expect(staging).toHaveLength(1)
      expect(listDir(path.join(env.images, staging[0]!))).toContain("rootfs.ext4")
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(listDir(env.images)).toEqual([])
      expect(Option.getOrThrow(yield* env.row)).toEqual(env.registered)
      expect(fs.readFileSync(env.rootfs).equals(sourceBytes)).toBe(true)
    }).pipe(Effect.scoped)
  )

  it.live("a source written to during the copy is refused after it, and the copy removed", () =>
    Effect.gen(function* () {
      const env = yield* setup(({ rootfs }) => Effect.sync(() => fs.appendFileSync(rootfs, Buffer.alloc(512, 1))))
      const error = failureOf(yield* Effect.exit(env.promote))
      expect(error._tag).toBe("ImageSourceChanged")
      expect(error.message).toContain(`${env.rootfs} changed since it was registered (size 33554432 → 33554944 bytes`)
      expect(listDir(env.images)).toEqual([])
      expect(Option.getOrThrow(yield* env.row)).toEqual(env.registered)
    }).pipe(Effect.scoped)
  )

  it.live("an image deleted during the copy: the commit finds no row and removes the published dir", () =>
    Effect.gen(function* () {
      const env = yield* setup(({ store }) => Effect.asVoid(Effect.orDie(store.images.remove("mine"))))
      const error = failureOf(yield* Effect.exit(env.promote))
      expect(error.message).toBe(
        'image "mine" cannot be promoted: it was deleted or promoted while its files were being copied'
      )
      expect(listDir(env.images)).toEqual([])
      expect(Option.isNone(yield* env.row)).toBe(true)
    }).pipe(Effect.scoped)
  )

  it.live(
    "a crash between the commit's rename and its UPDATE: the next start removes the dir, the image stays unmanaged",
    () =>
      Effect.gen(function* () {
        const env = yield* setup(() => Effect.void)
        // What the rename left: the image's final dir, leased by a process that is gone.
        const dir = path.join(env.images, env.registered.id)
        fs.mkdirSync(dir, { recursive: true })
        fs.writeFileSync(path.join(dir, "rootfs.ext4"), "partial")
        const gone = spawnSync(process.execPath, ["-e", "0"]).pid!
        fs.writeFileSync(path.join(dir, LEASE_FILE), String(gone))
        const report = yield* env.recover
        expect(report.removed).toEqual([dir])
        expect(listDir(env.images)).toEqual([])
        expect(Option.getOrThrow(yield* env.row)).toEqual(env.registered)
        // And the image can still be promoted.
        expect((yield* env.promote).managed).toBe(true)
      }).pipe(Effect.scoped)
  )
})
