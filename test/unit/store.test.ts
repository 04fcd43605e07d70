import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { Image, Kernel } from "../../src/domain/image.js"
import { StatePaths } from "../../src/layers/state/state-paths.js"
import { Store } from "../../src/layers/store/store.js"

const image = (name: string, id = `id-${name}`) =>
  new Image({
    id,
    name,
    ref: `docker.io/library/${name}:latest`,
    manifestDigest: `sha256:${"a".repeat(64)}`,
    platform: "linux/amd64",
    managed: true,
    rootfs: `/state/images/${id}/rootfs.ext4`,
    kernel: `/state/images/${id}/kernel`,
    initrd: null,
    modules: null,
    sizeBytes: 1 << 30,
    createdAt: "2026-11-29T00:00:00.000Z"
  })

const withStateDir = <A, E, R>(body: (root: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "banger-store-"))),
    (root) => body(path.join(root, "state")),
    (root) => Effect.sync(() => fs.rmSync(root, { recursive: true, force: true }))
  )

const storeAt = (root: string) => Store.layer.pipe(Layer.provide(StatePaths.layer(root)))

describe("Store (real SQLite file)", () => {
  it.live("creates the state dir, migrates, and round-trips images and kernels", () =>
    withStateDir((root) =>
      Effect.gen(function* () {
        const store = yield* Store
        yield* store.images.insert(image("debian"))
        yield* store.images.insert(image("alpine"))
        expect((yield* store.images.list).map((row) => row.name)).toEqual(["alpine", "debian"])
        expect(Option.getOrThrow(yield* store.images.find("debian"))).toEqual(image("debian"))
        expect(yield* store.images.managedIds).toEqual(new Set(["id-debian", "id-alpine"]))
        expect(Option.getOrThrow(yield* store.images.remove("debian"))).toEqual(image("debian"))
        expect(Option.isNone(yield* store.images.remove("debian"))).toBe(true)
        expect(Option.isNone(yield* store.images.find("debian"))).toBe(true)

        const kernel = new Kernel({ name: "k", kernel: "/k", initrd: "/i", modules: null, createdAt: "x" })
        yield* store.kernels.insert(kernel)
        expect(Option.getOrThrow(yield* store.kernels.find("k"))).toEqual(kernel)
        expect((yield* Effect.flip(store.kernels.insert(kernel)))._tag).toBe("KernelNameTaken")
        expect(fs.existsSync(path.join(root, "banger.db"))).toBe(true)
      }).pipe(Effect.provide(storeAt(root)))
    )
  )

  it.live("the UNIQUE name constraint turns a racing insert into ImageNameTaken", () =>
    withStateDir((root) =>
      Effect.gen(function* () {
        const store = yield* Store
        yield* store.images.insert(image("debian", "first"))
        const error = yield* Effect.flip(store.images.insert(image("debian", "second")))
        expect(error._tag).toBe("ImageNameTaken")
        expect(yield* store.images.managedIds).toEqual(new Set(["first"]))
      }).pipe(Effect.provide(storeAt(root)))
    )
  )

  it.live("an unmanaged image keeps its source stamps until markManaged moves it into the store", () =>
    withStateDir((root) =>
      Effect.gen(function* () {
        const store = yield* Store
        const sources = {
          rootfs: { size: 1 << 26, mtimeMs: 1_764_900_000_123 },
          kernel: { size: 4096, mtimeMs: 1_764_900_000_456 },
          initrd: null
        }
        const registered = new Image({
          ...image("mine", "id-mine"),
          ref: null,
          manifestDigest: null,
          platform: null,
          managed: false,
          rootfs: "/home/me/mine.ext4",
          kernel: "/boot/vmlinux",
          kernelName: "cloud",
          sources
        })
        yield* store.images.insert(registered)
        yield* store.images.insert(image("pulled"))
        expect(Option.getOrThrow(yield* store.images.find("mine"))).toEqual(registered)
        // Only managed images own a directory in the store.
        expect(yield* store.images.managedIds).toEqual(new Set(["id-pulled"]))

        const files = { rootfs: "/state/images/id-mine/rootfs.ext4", kernel: "/state/images/id-mine/kernel" }
        const promoted = yield* store.images.markManaged("id-mine", { ...files, initrd: null, modules: null })
        expect(Option.getOrThrow(promoted)).toEqual(
          new Image({ ...registered, ...files, managed: true, sources: null })
        )
        expect(Option.getOrThrow(yield* store.images.find("mine"))).toEqual(Option.getOrThrow(promoted))
        expect(yield* store.images.managedIds).toEqual(new Set(["id-pulled", "id-mine"]))
        // Already managed, or gone: nothing to update.
        expect(
          Option.isNone(yield* store.images.markManaged("id-mine", { ...files, initrd: null, modules: null }))
        ).toBe(true)
        expect(Option.isNone(yield* store.images.markManaged("nope", { ...files, initrd: null, modules: null }))).toBe(
          true
        )
      }).pipe(Effect.provide(storeAt(root)))
    )
  )

  it.live("reopening runs no migration twice and keeps the rows", () =>
    withStateDir((root) =>
      Effect.gen(function* () {
        yield* Effect.flatMap(Store, (store) => store.images.insert(image("debian"))).pipe(
          Effect.provide(storeAt(root))
        )
        const names = yield* Effect.flatMap(Store, (store) => store.images.list).pipe(Effect.provide(storeAt(root)))
        expect(names.map((row) => row.name)).toEqual(["debian"])
      })
    )
  )

  it.live("an unusable state dir is a StoreError, not a crash", () =>
    withStateDir((root) =>
      Effect.gen(function* () {
        fs.mkdirSync(path.dirname(root), { recursive: true })
        fs.writeFileSync(root, "not a directory")
        const error = yield* Effect.flip(Effect.provide(Store, storeAt(root)))
        expect(error._tag).toBe("StoreError")
        expect(error.message).toContain(root)
      })
    )
  )
})
