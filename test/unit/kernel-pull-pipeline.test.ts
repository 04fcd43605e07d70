/**
 * The kernel pull and the catalog parts of the image pull over mocked registry, blob cache and
 * rootfs builder (a fixture kernel tree), a fake ext4 writer, and a real state dir and SQLite store.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { TreeEntry } from "../../src/domain/tree.js"
import { RootfsBuilder } from "../../src/layers/rootfs/rootfs-builder.js"
import { StatePaths } from "../../src/layers/state/state-paths.js"
import { Store } from "../../src/layers/store/store.js"
import { pullKernel } from "../../src/pipelines/kernel/pull-kernel.js"
import { type PullEvent, PullProgress } from "../../src/pipelines/pull/progress.js"
import { pullImage } from "../../src/pipelines/pull/pull.js"
import { elfVmlinux } from "../support/kernel-files.js"
import {
  type Calls,
  ext4Fake,
  fixtureEntries,
  fixtureImage,
  mockedPullServices,
  newCalls
} from "../support/mock-layers.js"

const RELEASE = "6.1.0-unit"

const node = (p: string, type: TreeEntry["type"], size = 0): TreeEntry => ({
  path: p,
  type,
  mode: type === "directory" ? 0o755 : 0o644,
  uid: 0,
  gid: 0,
  mtime: 0,
  size,
  xattrs: []
})

/** `flatten` gives a kernel image's tree; `flattenInto` (the image's rootfs) the usual fixture. */
const kernelTreeBuilder = (calls: Calls) =>
  Layer.effect(
    RootfsBuilder,
    Effect.map(StatePaths, (paths) => ({
      flatten: () =>
        Effect.acquireRelease(
          Effect.sync(() => {
            calls.flatten++
            const dir = paths.tempPath(paths.tmp, "tree")
            fs.mkdirSync(path.join(dir, "boot"), { recursive: true })
            fs.mkdirSync(path.join(dir, "lib/modules", RELEASE), { recursive: true })
            fs.writeFileSync(path.join(dir, "boot", `vmlinux-${RELEASE}`), elfVmlinux(RELEASE))
            fs.writeFileSync(path.join(dir, "lib/modules", RELEASE, "modules.dep"), "")
            const entries = [
              node("", "directory"),
              node("boot", "directory"),
              node(`boot/vmlinux-${RELEASE}`, "file"),
              node("lib", "directory"),
              node("lib/modules", "directory"),
              node(`lib/modules/${RELEASE}`, "directory"),
              node(`lib/modules/${RELEASE}/modules.dep`, "file")
            ]
            return { dir, entries }
          }),
          (tree) => Effect.sync(() => fs.rmSync(tree.dir, { recursive: true, force: true }))
        ),
      flattenInto: (_layers, contents) =>
        Effect.sync(() => {
          calls.flatten++
          const writer = contents.begin(7)
          writer.write(Buffer.from("banger\n"))
          const content = writer.finish()
          return fixtureEntries.map((entry) => (entry.type === "file" ? { ...entry, content } : entry))
        })
    }))
  )

const withState = <A, E, R>(body: (state: string, catalog: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "banger-kpull-unit-"))),
    (root) => {
      const catalog = path.join(root, "catalog.json")
      fs.writeFileSync(
        catalog,
        JSON.stringify({
          kernels: [
            { name: "unit-kernel", ref: "example.test/kernels/unit:1", arch: "x86_64", description: "-", default: true }
          ],
          images: [
            { name: "unit-image", ref: "example.test/unit:1", kernel: "unit-kernel", description: "-", default: true }
          ]
        })
      )
      return body(path.join(root, "state"), catalog)
    },
    (root) => Effect.sync(() => fs.rmSync(root, { recursive: true, force: true }))
  )

const services = (state: string, calls: Calls, events: Array<PullEvent>, failImage = false) =>
  Layer.mergeAll(
    mockedPullServices(state, calls, ext4Fake(calls, { fail: failImage })),
    kernelTreeBuilder(calls).pipe(Layer.provide(StatePaths.layer(state))),
    Layer.succeed(PullProgress, { report: (event) => Effect.sync(() => void events.push(event)) })
  )

const phases = (events: ReadonlyArray<PullEvent>) =>
  events.flatMap((event) => (event._tag === "PhaseStarted" ? [`${event.phase} ${event.name}`] : []))

const listDir = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [])

describe("kernel pull pipeline (mocked registry and rootfs)", () => {
  it.live("a catalog name pulls the entry's ref under its name, with format and version", () =>
    withState((state, catalog) => {
      const calls = newCalls()
      const events: Array<PullEvent> = []
      return Effect.gen(function* () {
        const kernel = yield* pullKernel({ reference: "unit-kernel", catalog })
        expect(kernel).toMatchObject({
          name: "unit-kernel",
          ref: "example.test/kernels/unit:1",
          manifestDigest: fixtureImage.manifestDigest,
          format: "elf",
          version: RELEASE,
          initrd: null
        })
        expect(fs.readFileSync(kernel.kernel).equals(elfVmlinux(RELEASE))).toBe(true)
        expect(listDir(path.join(state, "kernels"))).toEqual(["unit-kernel"])
        expect(listDir(path.join(state, "tmp"))).toEqual([])
        expect(phases(events)).toEqual(["kernel unit-kernel"])
        expect(events).toContainEqual({ _tag: "StageStarted", stage: "extract" })
      }).pipe(Effect.provide(services(state, calls, events)))
    })
  )

  it.live("image pull CATALOG_NAME: kernel phase then image phase; the image records its kernel", () =>
    withState((state, catalog) => {
      const calls = newCalls()
      const events: Array<PullEvent> = []
      return Effect.gen(function* () {
        const image = yield* pullImage({ reference: "unit-image", catalog })
        expect(image).toMatchObject({ name: "unit-image", ref: "example.test/unit:1", kernelName: "unit-kernel" })
        expect(fs.readFileSync(image.kernel).equals(elfVmlinux(RELEASE))).toBe(true)
        expect(phases(events)).toEqual(["kernel unit-kernel", "image unit-image"])
        const kernels = yield* Effect.flatMap(Store, (store) => store.kernels.list)
        expect(kernels.map((kernel) => kernel.name)).toEqual(["unit-kernel"])
      }).pipe(Effect.provide(services(state, calls, events)))
    })
  )

  it.live("a failure after the kernel was pulled removes that kernel too: nothing is left", () =>
    withState((state, catalog) => {
      const calls = newCalls()
      const events: Array<PullEvent> = []
      return Effect.gen(function* () {
        const error = yield* Effect.flip(pullImage({ reference: "unit-image", catalog }))
        expect(error._tag).toBe("Ext4Error")
        expect(phases(events)).toEqual(["kernel unit-kernel", "image unit-image"])
        const store = yield* Store
        expect(yield* store.kernels.list).toEqual([])
        expect(yield* store.images.list).toEqual([])
        expect(listDir(path.join(state, "kernels"))).toEqual([])
        expect(listDir(path.join(state, "images"))).toEqual([])
      }).pipe(Effect.provide(services(state, calls, events, true)))
    })
  )

  it.live("a reference with / : or @ never reads the catalog, even a broken one", () =>
    withState((state, catalog) => {
      fs.writeFileSync(catalog, "{ not json")
      const calls = newCalls()
      const events: Array<PullEvent> = []
      return Effect.gen(function* () {
        const kernel = yield* pullKernel({ reference: "example.test/kernels/unit:1", catalog })
        expect(kernel.name).toBe("unit-1")
        const broken = yield* Effect.flip(pullKernel({ reference: "unit-kernel", catalog }))
        expect(broken._tag).toBe("CatalogInvalid")
      }).pipe(Effect.provide(services(state, calls, events)))
    })
  )
})
