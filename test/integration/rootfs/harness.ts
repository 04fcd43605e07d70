/**
 * Shared plumbing for the rootfs flattening tests: a sandbox with a state root and an `outside`
 * sentinel directory that hostile layers aim at, blob files on disk, and raw tar pieces the layer
 * builder cannot express (arbitrary PAX records, GNU long names).
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer } from "effect"
import type { TreeEntry } from "../../../src/domain/tree.js"
import { type LayerFile, RootfsBuilder, type RootfsBuilderOptions } from "../../../src/layers/rootfs/rootfs-builder.js"
import { StatePaths } from "../../../src/layers/state/state-paths.js"
import { type BuiltLayer, buildLayer, type Compression, type LayerEntrySpec } from "../../support/layers.js"

export interface Sandbox {
  readonly root: string
  readonly state: string
  readonly tmp: string
  /** Hostile layers try to write here; it must never change. */
  readonly outside: string
  readonly blobs: string
}

export const sandbox = Effect.acquireRelease(
  Effect.promise(async (): Promise<Sandbox> => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), "banger-rootfs-test-"))
    const outside = path.join(root, "outside")
    await fs.mkdir(outside)
    await fs.writeFile(path.join(outside, "secret"), "host secret\n")
    await fs.mkdir(path.join(outside, "etc"))
    await fs.writeFile(path.join(outside, "etc", "passwd"), "root:x:0:0::/root:/bin/sh\n")
    const blobs = path.join(root, "blobs")
    await fs.mkdir(blobs)
    const state = path.join(root, "state")
    return { root, state, tmp: path.join(state, "tmp"), outside, blobs }
  }),
  (box) => Effect.promise(() => fs.rm(box.root, { recursive: true, force: true }))
)

let counter = 0

/** Writes a blob and describes it as the builder expects; `diffId` can be overridden to lie. */
export const layerFile = (box: Sandbox, built: BuiltLayer, overrides: Partial<LayerFile> = {}) =>
  Effect.promise(async (): Promise<LayerFile> => {
    const file = path.join(box.blobs, `layer-${counter++}`)
    await fs.writeFile(file, built.blob)
    return { path: file, digest: built.digest, diffId: built.diffId, compression: built.compression, ...overrides }
  })

export const specLayer = (box: Sandbox, entries: ReadonlyArray<LayerEntrySpec>, compression: Compression = "gzip") =>
  Effect.promise(() => buildLayer(entries, compression)).pipe(Effect.flatMap((built) => layerFile(box, built)))

export const builderLayer = (box: Sandbox, options: RootfsBuilderOptions = {}) =>
  RootfsBuilder.layerWith(options).pipe(Layer.provide(StatePaths.layer(box.state)))

/** Flattens in a scope of its own; `use` sees the tree while it exists. */
export const flattenWith = <A, E>(
  box: Sandbox,
  layers: ReadonlyArray<LayerFile>,
  use: (tree: { readonly dir: string; readonly entries: ReadonlyArray<TreeEntry> }) => Effect.Effect<A, E>,
  options: RootfsBuilderOptions = {}
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const builder = yield* RootfsBuilder
      const tree = yield* builder.flatten(layers)
      return yield* use(tree)
    })
  ).pipe(Effect.provide(builderLayer(box, options)))

/** Flattens and expects a failure; returns the error. */
export const flattenError = (box: Sandbox, layers: ReadonlyArray<LayerFile>, options: RootfsBuilderOptions = {}) =>
  flattenWith(box, layers, () => Effect.void, options).pipe(Effect.flip)

export const entryMap = (entries: ReadonlyArray<TreeEntry>) => new Map(entries.map((entry) => [entry.path, entry]))

export const entryAt = (entries: ReadonlyArray<TreeEntry>, at: string): TreeEntry => {
  const found = entries.find((entry) => entry.path === at)
  if (found === undefined) throw new Error(`no entry at "${at}"; have: ${entries.map((e) => e.path).join(", ")}`)
  return found
}

export const paths = (entries: ReadonlyArray<TreeEntry>) => entries.map((entry) => entry.path)

/** Every file and directory under `dir` with its content, without following symlinks. */
export const snapshot = async (dir: string): Promise<Record<string, string>> => {
  const result: Record<string, string> = {}
  const walk = async (current: string, prefix: string) => {
    for (const name of (await fs.readdir(current)).sort()) {
      const full = path.join(current, name)
      const stat = await fs.lstat(full)
      const key = `${prefix}${name}`
      if (stat.isDirectory()) {
        result[`${key}/`] = `dir ${stat.mode.toString(8)} ${stat.mtimeMs}`
        await walk(full, `${key}/`)
      } else if (stat.isSymbolicLink()) {
        result[key] = `-> ${await fs.readlink(full)}`
      } else {
        result[key] = `${stat.mode.toString(8)} ${stat.nlink} ${stat.mtimeMs} ${await fs.readFile(full, "utf8")}`
      }
    }
  }
  await walk(dir, "")
  return result
}

export const tmpListing = (box: Sandbox) =>
  Effect.promise(() =>
    fs.readdir(box.tmp).catch((error: NodeJS.ErrnoException) => (error.code === "ENOENT" ? [] : Promise.reject(error)))
  )

const paxRecord = (key: string, value: Uint8Array): Buffer => {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from("\n")])
  // The length prefix counts its own digits.
  let length = body.length + 1
  while (String(length).length + body.length !== length) length = String(length).length + body.length
  return Buffer.concat([Buffer.from(String(length)), body])
}

const octal = (value: number, width: number) => `${value.toString(8).padStart(width - 1, "0")}\0`

/** One ustar header block written by hand, for types and fields tar-stream's packer cannot emit. */
export const rawHeader = (fields: {
  readonly name: string
  readonly type: string
  readonly size?: number
  readonly mode?: number
  readonly linkname?: string
  readonly gnu?: boolean
}): Buffer => {
  const block = Buffer.alloc(512)
  block.write(fields.name, 0, 100)
  block.write(octal(fields.mode ?? 0o644, 8), 100)
  block.write(octal(0, 8), 108)
  block.write(octal(0, 8), 116)
  block.write(octal(fields.size ?? 0, 12), 124)
  block.write(octal(1_700_000_000, 12), 136)
  block.write(fields.type, 156)
  if (fields.linkname) block.write(fields.linkname, 157, 100)
  if (fields.gnu) block.write("ustar  \0", 257)
  else {
    block.write("ustar\0", 257)
    block.write("00", 263)
  }
  block.write("        ", 148)
  let sum = 0
  for (const byte of block) sum += byte
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148)
  return block
}

const padded = (data: Buffer) => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)])

/** A PAX extended header (typeflag x) carrying exactly these raw records. */
export const paxHeader = (records: ReadonlyArray<readonly [string, string | Uint8Array]>): Buffer => {
  const data = Buffer.concat(
    records.map(([key, value]) => paxRecord(key, typeof value === "string" ? Buffer.from(value) : value))
  )
  return Buffer.concat([rawHeader({ name: "PaxHeaders/entry", type: "x", size: data.length }), padded(data)])
}

export const gnuLongName = (name: string): Buffer => {
  const data = Buffer.from(`${name}\0`)
  return Buffer.concat([rawHeader({ name: "././@LongLink", type: "L", size: data.length, gnu: true }), padded(data)])
}

export const rawFile = (name: string, content: string, options: { readonly gnu?: boolean } = {}): Buffer => {
  const data = Buffer.from(content)
  return Buffer.concat([rawHeader({ name, type: "0", size: data.length, ...options }), padded(data)])
}

export const endOfArchive = Buffer.alloc(1024)

export const sha256 = (data: Uint8Array) => `sha256:${createHash("sha256").update(data).digest("hex")}`

/** Children of this test process named `zstd` or `igzip` (the builder's decompressors). */
export const decompressorChildren = (): Array<string> => {
  let out: string
  try {
    out = execFileSync("ps", ["-o", "pid=,comm=", "--ppid", String(process.pid)], { encoding: "utf8" })
  } catch (error) {
    // ps exits 1 when no process matches.
    if ((error as { status?: number }).status === 1) return []
    throw error
  }
  return out
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.endsWith("zstd") || line.endsWith("igzip"))
}

/** Runs `effect` with the environment variable `name` set to `value` (unset if undefined), restoring it after. */
export const withEnv = <A, E, R>(name: string, value: string | undefined, effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const saved = process.env[name]
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
      return saved
    }),
    () => effect,
    (saved) =>
      Effect.sync(() => {
        if (saved === undefined) delete process.env[name]
        else process.env[name] = saved
      })
  )

/** Runs `effect` with gzip layers inflated by `decoder` (decompress.ts reads `BANGER_GZIP` per layer). */
export const withGzipDecoder = <A, E, R>(decoder: "igzip" | "zlib", effect: Effect.Effect<A, E, R>) =>
  withEnv("BANGER_GZIP", decoder === "zlib" ? "zlib" : undefined, effect)

/** Runs `effect` with DiffIDs hashed by `hasher` (stream-hasher.ts reads `BANGER_DIGEST` per layer). */
export const withDigestHasher = <A, E, R>(hasher: "openssl" | "node", effect: Effect.Effect<A, E, R>) =>
  withEnv("BANGER_DIGEST", hasher, effect)

export const GZIP_DECODERS = ["igzip", "zlib"] as const
