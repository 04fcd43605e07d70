import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Option } from "effect"
import { FAKE_IMAGE_MAGIC } from "../../src/layers/ext4/ext4-tools-fake.js"
import { StatePaths } from "../../src/layers/state/state-paths.js"
import { Store } from "../../src/layers/store/store.js"
import { PullProgress } from "../../src/pipelines/pull/progress.js"
import { pullImage } from "../../src/pipelines/pull/pull.js"
import { FAKE_KERNEL_BYTES } from "../support/fake-kernel.js"
import { type Calls, ext4Fake, fixtureImage, mockedPullServices, newCalls } from "../support/mock-layers.js"

/** A temp state dir plus a kernel file, both removed after the test. */
const withTempState = <A, E, R>(body: (root: string, kernel: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "banger-pull-unit-"))),
    (root) => {
      const kernel = path.join(root, "vmlinuz")
      fs.writeFileSync(kernel, FAKE_KERNEL_BYTES)
      return body(path.join(root, "state"), kernel)
    },
    (root) => Effect.sync(() => fs.rmSync(root, { recursive: true, force: true }))
  )

const pipelineLayer = (root: string, calls: Calls, ext4 = ext4Fake(calls)) =>
  Layer.merge(mockedPullServices(root, calls, ext4), PullProgress.silent)

/** Nothing is ever written to tmp by a pull through a draft; the directory may not even exist. */
const listTmp = (tmp: string) => (fs.existsSync(tmp) ? fs.readdirSync(tmp) : [])

describe("pull pipeline (mocked registry, fixture tree, fake ext4)", () => {
  it.live("publishes rootfs, kernel and row; staging and temp trees are gone", () =>
    withTempState((root, kernel) => {
      const calls = newCalls()
      return Effect.gen(function* () {
        const image = yield* pullImage({ reference: "debian:bookworm", kernel: { _tag: "Paths", kernel } })
        expect(image.name).toBe("debian-bookworm")
        expect(image.ref).toBe("docker.io/library/debian:bookworm")
        expect(image.platform).toBe("linux/amd64")
        expect(image.managed).toBe(true)
        const paths = yield* StatePaths
        const dir = paths.imageDir(image.id)
        expect(image.rootfs).toBe(path.join(dir, "rootfs.ext4"))
        expect(image.kernel).toBe(path.join(dir, "kernel"))
        // The fake's image: its marker, sparsely extended to the size chosen (1 GiB by default).
        expect(fs.readFileSync(image.rootfs).subarray(0, FAKE_IMAGE_MAGIC.length).toString()).toBe(FAKE_IMAGE_MAGIC)
        expect(fs.statSync(image.rootfs).size).toBe(2 ** 30)
        expect(fs.readFileSync(image.kernel)).toEqual(FAKE_KERNEL_BYTES)
        const row = yield* Effect.flatMap(Store, (store) => store.images.find("debian-bookworm"))
        expect(Option.getOrThrow(row).id).toBe(image.id)
        // The image config's run settings survive the round trip through the database.
        expect(Option.getOrThrow(row).runtime).toEqual({
          entrypoint: ["/entry"],
          cmd: ["serve", "--port", "80"],
          env: ["A=1"],
          workingDir: "/srv",
          user: "1000"
        })
        expect(fs.readdirSync(paths.images)).toEqual([image.id])
        expect(fs.readdirSync(dir).sort()).toEqual(["kernel", "rootfs.ext4"])
        expect(listTmp(paths.tmp)).toEqual([])
        expect(calls.flatten).toBe(1)
        // Every layer was applied and checked: the cache remembers its DiffID for later pulls.
        expect(calls.rememberDiffId).toEqual(fixtureImage.layers.map((layer) => layer.digest))
      }).pipe(Effect.provide(pipelineLayer(root, calls)))
    })
  )

  it.live("rejects a taken name before any download", () =>
    withTempState((root, kernel) => {
      const calls = newCalls()
      return Effect.gen(function* () {
        yield* pullImage({ reference: "debian:bookworm", kernel: { _tag: "Paths", kernel } })
        const second = yield* Effect.exit(
          pullImage({ reference: "debian:bookworm", kernel: { _tag: "Paths", kernel } })
        )
        expect(second).toMatchObject({ _tag: "Failure" })
        const error = yield* Effect.flip(
          pullImage({ reference: "debian", name: "debian-bookworm", kernel: { _tag: "Paths", kernel } })
        )
        expect(error._tag).toBe("ImageNameTaken")
        expect(calls.resolve).toBe(1)
      }).pipe(Effect.provide(pipelineLayer(root, calls)))
    })
  )

  it.live("fails with KernelMissing naming both options, before any download", () =>
    withTempState((root) => {
      const calls = newCalls()
      return Effect.gen(function* () {
        const error = yield* Effect.flip(pullImage({ reference: "debian" }))
        expect(error._tag).toBe("KernelMissing")
        expect(error.message).toContain("--kernel")
        expect(error.message).toContain("--kernel-ref")
        expect(calls.resolve).toBe(0)
      }).pipe(Effect.provide(pipelineLayer(root, calls)))
    })
  )

  it.live("rejects a relative or missing kernel path", () =>
    withTempState((root, kernel) => {
      const calls = newCalls()
      return Effect.gen(function* () {
        const relative = yield* Effect.flip(
          pullImage({ reference: "debian", kernel: { _tag: "Paths", kernel: "vmlinuz" } })
        )
        expect(relative._tag).toBe("InvalidKernelInput")
        const missing = yield* Effect.flip(
          pullImage({ reference: "debian", kernel: { _tag: "Paths", kernel, initrd: "/nonexistent/initrd" } })
        )
        expect(missing.message).toContain("/nonexistent/initrd")
        expect(calls.resolve).toBe(0)
      }).pipe(Effect.provide(pipelineLayer(root, calls)))
    })
  )

  it.live("a failing image write leaves no staging dir, no temp files and no row", () =>
    withTempState((root, kernel) => {
      const calls = newCalls()
      return Effect.gen(function* () {
        const error = yield* Effect.flip(pullImage({ reference: "debian", kernel: { _tag: "Paths", kernel } }))
        expect(error._tag).toBe("Ext4Error")
        expect(calls.build).toHaveLength(1)
        const paths = yield* StatePaths
        expect(fs.readdirSync(paths.images)).toEqual([])
        expect(listTmp(paths.tmp)).toEqual([])
        expect(yield* Effect.flatMap(Store, (store) => store.images.list)).toEqual([])
      }).pipe(Effect.provide(pipelineLayer(root, calls, ext4Fake(calls, { fail: true }))))
    })
  )

  it.live("an image that fails its check (run alongside the boot staging) leaves no staging dir and no row", () =>
    withTempState((root, kernel) => {
      const calls = newCalls()
      return Effect.gen(function* () {
        const error = yield* Effect.flip(pullImage({ reference: "debian", kernel: { _tag: "Paths", kernel } }))
        expect(error).toMatchObject({ _tag: "Ext4Error", tool: "e2fsck" })
        expect(calls.build).toHaveLength(1)
        expect(calls.rememberDiffId).toEqual([])
        const paths = yield* StatePaths
        expect(fs.readdirSync(paths.images)).toEqual([])
        expect(listTmp(paths.tmp)).toEqual([])
        expect(yield* Effect.flatMap(Store, (store) => store.images.list)).toEqual([])
      }).pipe(Effect.provide(pipelineLayer(root, calls, ext4Fake(calls, { failCheck: true }))))
    })
  )

  it.live("an interrupted pull rolls back the staging dir and the image in it", () =>
    withTempState((root, kernel) => {
      const calls = newCalls()
      return Effect.gen(function* () {
        const fiber = yield* Effect.fork(pullImage({ reference: "debian", kernel: { _tag: "Paths", kernel } }))
        // Wait until the image is being written in the staging dir, then interrupt.
        while (calls.build.length === 0) yield* Effect.sleep("5 millis")
        const paths = yield* StatePaths
        const staging = fs.readdirSync(paths.images).filter((name) => name.endsWith(".staging"))
        expect(staging).toHaveLength(1)
        expect(fs.readdirSync(path.join(paths.images, staging[0]!))).toContain("rootfs.ext4")
        const exit = yield* Fiber.interrupt(fiber)
        expect(Exit.isInterrupted(exit)).toBe(true)
        expect(fs.readdirSync(paths.images)).toEqual([])
        expect(listTmp(paths.tmp)).toEqual([])
        expect(yield* Effect.flatMap(Store, (store) => store.images.list)).toEqual([])
      }).pipe(Effect.provide(pipelineLayer(root, calls, ext4Fake(calls, { delay: Effect.never }))))
    })
  )

  it.live("invalid reference, name, platform and size fail before anything is touched", () =>
    withTempState((root, kernel) => {
      const calls = newCalls()
      const k = { _tag: "Paths" as const, kernel }
      return Effect.gen(function* () {
        expect((yield* Effect.flip(pullImage({ reference: "Debian", kernel: k })))._tag).toBe("InvalidReference")
        expect((yield* Effect.flip(pullImage({ reference: "debian", name: "../x", kernel: k })))._tag).toBe(
          "InvalidName"
        )
        expect((yield* Effect.flip(pullImage({ reference: "debian", platform: "linux", kernel: k })))._tag).toBe(
          "InvalidPlatform"
        )
        expect((yield* Effect.flip(pullImage({ reference: "debian", size: "lots", kernel: k })))._tag).toBe(
          "InvalidSize"
        )
        expect(calls.resolve).toBe(0)
        const fsService = yield* FileSystem.FileSystem
        const paths = yield* StatePaths
        expect(yield* fsService.exists(paths.images)).toBe(false)
      }).pipe(Effect.provide(pipelineLayer(root, calls)))
    })
  )
})
