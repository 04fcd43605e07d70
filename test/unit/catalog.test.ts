/**
 * The catalog file's rules (each broken one is a CatalogInvalid naming entry and field), the shipped
 * catalog.json, and `catalog.list`'s local state over a real SQLite store.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { CatalogInvalid } from "../../src/domain/errors.js"
import { Image, Kernel } from "../../src/domain/image.js"
import { StatePaths } from "../../src/layers/state/state-paths.js"
import { Store } from "../../src/layers/store/store.js"
import { listCatalog, localState } from "../../src/pipelines/catalog/list-catalog.js"
import { DefaultCatalogPath, readCatalog } from "../../src/pipelines/catalog/load-catalog.js"
import { parseReferenceEither } from "../../src/pipelines/pull/parse-reference.js"

let dir: string
let files = 0

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "banger-catalog-"))
})

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true })
})

type Json = Record<string, unknown>

const valid = () => ({
  kernels: [
    { name: "k1", ref: "localhost:5000/kernel:1", arch: "amd64", description: "first", default: true },
    { name: "k2", ref: "ghcr.io/o/kernel:2", arch: "amd64", description: "second" }
  ] as Array<Json>,
  images: [
    { name: "i1", ref: "localhost:5000/image:1", kernel: "k1", description: "default image", default: true },
    { name: "i2", ref: "debian:bookworm", kernel: "k2", description: "another" }
  ] as Array<Json>
})

const writeCatalog = (content: unknown): string => {
  const file = path.join(dir, `catalog-${files++}.json`)
  fs.writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content))
  return file
}

const read = (file: string) => readCatalog(file).pipe(Effect.provide(NodeContext.layer))

/** The error a broken catalog gives, as the CLI prints it too. */
const failure = (content: unknown) =>
  Effect.gen(function* () {
    const file = writeCatalog(content)
    const error = yield* Effect.flip(read(file))
    expect(error).toBeInstanceOf(CatalogInvalid)
    expect(error.path).toBe(file)
    expect(error.message.startsWith(`invalid catalog ${file}: `)).toBe(true)
    return error
  })

const broken = (edit: (catalog: ReturnType<typeof valid>) => void) => {
  const catalog = valid()
  edit(catalog)
  return failure(catalog)
}

describe("catalog validation", () => {
  it.effect("accepts a valid catalog, with `default` false when left out", () =>
    Effect.gen(function* () {
      const file = writeCatalog(valid())
      const catalog = yield* read(file)
      expect(catalog.source).toBe(file)
      expect(catalog.kernels.map((k) => [k.name, k.default])).toEqual([
        ["k1", true],
        ["k2", false]
      ])
      expect(catalog.defaultKernel.name).toBe("k1")
      expect(catalog.defaultImage.name).toBe("i1")
      expect(catalog.findImage("i2")?.kernel).toBe("k2")
    })
  )

  it.effect("a missing file", () =>
    Effect.gen(function* () {
      const file = path.join(dir, "absent.json")
      const error = yield* Effect.flip(read(file))
      expect(error).toBeInstanceOf(CatalogInvalid)
      expect([error.entry, error.field]).toEqual(["", ""])
      expect(error.message).toBe(`invalid catalog ${file}: no such file`)
    })
  )

  it.effect("not JSON", () =>
    Effect.gen(function* () {
      const error = yield* failure('{ "kernels": [')
      expect([error.entry, error.field]).toEqual(["", ""])
      expect(error.reason).toMatch(/^not JSON: /)
    })
  )

  it.effect("a field of the wrong type names the entry and the field", () =>
    Effect.gen(function* () {
      const error = yield* broken((c) => {
        c.kernels[1]!.arch = 64
      })
      expect([error.entry, error.field]).toEqual(["kernels[1]", "arch"])
      expect(error.reason).toMatch(/string/)
    })
  )

  it.effect("a missing field names the entry and the field", () =>
    Effect.gen(function* () {
      const error = yield* broken((c) => {
        delete c.images[1]!.description
      })
      expect([error.entry, error.field]).toEqual(["images[1]", "description"])
    })
  )

  it.effect("an unknown field is refused, not ignored", () =>
    Effect.gen(function* () {
      const error = yield* broken((c) => {
        c.images[0]!.kernal = "k1"
      })
      expect([error.entry, error.field]).toEqual(["images[0]", "kernal"])
    })
  )

  it.effect("a list that is not an array", () =>
    Effect.gen(function* () {
      const error = yield* failure({ kernels: {}, images: [] })
      expect(error.entry).toBe("kernels")
    })
  )

  it.effect("an image naming an unknown kernel", () =>
    Effect.gen(function* () {
      const error = yield* broken((c) => {
        c.images[1]!.kernel = "k3"
      })
      expect([error.entry, error.field]).toEqual(["images[1] (i2)", "kernel"])
      expect(error.reason).toBe('no catalog kernel is named "k3"')
    })
  )

  it.effect("a duplicate name", () =>
    Effect.gen(function* () {
      const error = yield* broken((c) => {
        c.kernels[1]!.name = "k1"
      })
      expect([error.entry, error.field]).toEqual(["kernels[1] (k1)", "name"])
      expect(error.reason).toBe("duplicate name (also kernels[0])")
    })
  )

  it.effect("a second default", () =>
    Effect.gen(function* () {
      const error = yield* broken((c) => {
        c.images[1]!.default = true
      })
      expect([error.entry, error.field]).toEqual(["images[1] (i2)", "default"])
      expect(error.reason).toBe("a second default (images[0] (i1) is one)")
    })
  )

  it.effect("no default", () =>
    Effect.gen(function* () {
      const error = yield* broken((c) => {
        delete c.kernels[0]!.default
      })
      expect([error.entry, error.field]).toEqual(["kernels", "default"])
      expect(error.reason).toMatch(/exactly one of the kernels must be the default; none is/)
    })
  )

  it.effect("an empty list", () =>
    Effect.gen(function* () {
      const error = yield* broken((c) => {
        c.images = []
      })
      expect(error.entry).toBe("images")
      expect(error.reason).toBe("the catalog lists no images")
    })
  )

  it.effect("a bad ref", () =>
    Effect.gen(function* () {
      const error = yield* broken((c) => {
        c.images[1]!.ref = "Docker.io/Library/Debian"
      })
      expect([error.entry, error.field]).toEqual(["images[1] (i2)", "ref"])
      expect(error.reason).toMatch(/^invalid reference "Docker\.io\/Library\/Debian": /)
    })
  )

  it.effect("an invalid name", () =>
    Effect.gen(function* () {
      const error = yield* broken((c) => {
        c.kernels[1]!.name = "Kernel 2"
      })
      expect([error.entry, error.field]).toEqual(["kernels[1] (Kernel 2)", "name"])
    })
  )
})

describe("the shipped catalog.json", () => {
  const shipped = path.resolve(import.meta.dirname, "..", "..", "catalog.json")

  it.effect("loads, with defaults that fit each other", () =>
    Effect.gen(function* () {
      const catalog = yield* read(shipped)
      expect(catalog.kernels.filter((k) => k.default)).toHaveLength(1)
      expect(catalog.images.filter((i) => i.default)).toHaveLength(1)
      // The default image boots with the default kernel, so `vm create` with no arguments pulls one pair.
      expect(catalog.defaultImage.kernel).toBe(catalog.defaultKernel.name)
      for (const kernel of catalog.kernels) expect(kernel.arch).toBe("amd64")
      for (const entry of [...catalog.kernels, ...catalog.images]) {
        const ref = parseReferenceEither(entry.ref)
        // Real published refs, written out in full: a registry host and an explicit tag or digest.
        expect(ref._tag === "Right" && entry.ref === ref.right.normalized, entry.ref).toBe(true)
        expect(entry.description.length).toBeGreaterThan(20)
      }
    })
  )
})

describe("local state of catalog entries", () => {
  const entry = { name: "k1", ref: "localhost:5000/kernel:1" }

  it("is no without a stored one of that name, whatever the ref", () => {
    expect(localState(entry, [{ name: "k2", ref: entry.ref }])).toEqual({ local: "no", localRef: null })
  })

  it("is yes when the stored one came from the entry's ref, compared in canonical form", () => {
    expect(
      localState({ name: "d", ref: "debian:bookworm" }, [{ name: "d", ref: "docker.io/library/debian:bookworm" }])
    ).toEqual({
      local: "yes",
      localRef: "docker.io/library/debian:bookworm"
    })
  })

  it("is other-ref when the stored one came from elsewhere or from paths", () => {
    expect(localState(entry, [{ name: "k1", ref: "localhost:5000/kernel:2" }])).toEqual({
      local: "other-ref",
      localRef: "localhost:5000/kernel:2"
    })
    expect(localState(entry, [{ name: "k1", ref: null }])).toEqual({ local: "other-ref", localRef: null })
  })

  it.live("catalog.list reads the store (real SQLite) and the requested catalog, else the default one", () =>
    Effect.gen(function* () {
      const state = path.join(dir, "state")
      const requested = writeCatalog(valid())
      const fallback = writeCatalog({ ...valid(), images: [valid().images[0]] })
      const store = Store.layer.pipe(Layer.provide(StatePaths.layer(state)))
      const run = (file?: string) =>
        listCatalog(file).pipe(
          Effect.provide(Layer.mergeAll(store, NodeContext.layer, DefaultCatalogPath.layer(fallback)))
        )
      yield* Effect.gen(function* () {
        const db = yield* Store
        yield* db.kernels.insert(
          new Kernel({
            name: "k1",
            kernel: "/k",
            initrd: null,
            modules: null,
            createdAt: "2026-12-05T00:00:00.000Z",
            ref: "localhost:5000/kernel:1",
            format: "elf"
          })
        )
        yield* db.kernels.insert(new Kernel({ name: "k2", kernel: "/k2", initrd: null, modules: null, createdAt: "x" }))
        yield* db.images.insert(
          new Image({
            id: "id-i2",
            name: "i2",
            ref: "docker.io/library/debian:trixie",
            manifestDigest: null,
            platform: "linux/amd64",
            managed: true,
            rootfs: "/r",
            kernel: "/k",
            initrd: null,
            modules: null,
            sizeBytes: 1,
            createdAt: "x"
          })
        )
      }).pipe(Effect.provide(store))

      const listing = yield* run(requested)
      expect(listing.source).toBe(requested)
      expect(listing.kernels.map((k) => [k.name, k.default, k.local, k.localRef])).toEqual([
        ["k1", true, "yes", "localhost:5000/kernel:1"],
        ["k2", false, "other-ref", null]
      ])
      expect(listing.images.map((i) => [i.name, i.kernel, i.local, i.localRef])).toEqual([
        ["i1", "k1", "no", null],
        ["i2", "k2", "other-ref", "docker.io/library/debian:trixie"]
      ])
      const byDefault = yield* run()
      expect(byDefault.source).toBe(fallback)
      expect(byDefault.images.map((i) => i.name)).toEqual(["i1"])
    })
  )
})
