/**
 * The scale bench's images, built once and cached as gzip layer blobs under `.bench/scale/<name>/`
 * (or `$BANGER_BENCH_SCALE_DIR/<name>/`), with an `image.json` listing the layers' descriptors, ready
 * for `pushImage` (test/support/registry.ts):
 *
 * - `dev-80k`: a ~1.5 GB, ~80k-entry dev-style image in 3 gzip layers: the Debian minbase fixture;
 *   real host trees (/usr/share, /usr/include, /usr/lib/node_modules, /usr/lib/jvm, ...: a fixed list
 *   taken whole, in order, while the image is under 1.5 GB); a synthetic app tree filling up to 80k
 *   entries and 1.5 GB (at least 2,000 entries), plus a whiteout.
 * - `files-500k`: one layer, 500,000 small files (500 MB) in 5,000 directories up to 24 deep, with
 *   symlinks, hardlinks and user xattrs (bench/synthetic-tree.ts).
 *
 *   npx tsx bench/scale-images.ts build [all|dev-80k|files-500k] [--force]
 *
 * or `await buildScaleImage("files-500k")` from code. Everything streams: no tree or tar in memory.
 */

import type { Stats } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { debianRootfs, debianRootfsInfo, repoRoot } from "../test/support/debian-rootfs.js"
import { type LayerFile, layerFromDirectory, whiteout } from "../test/support/rootfs-layers.js"
import { syntheticTree } from "./synthetic-tree.js"

export const SCALE_IMAGES = ["dev-80k", "files-500k"] as const
export type ScaleImageName = (typeof SCALE_IMAGES)[number]

export interface ScaleLayer extends LayerFile {
  readonly name: string
}

export interface ScaleImage {
  readonly name: ScaleImageName
  readonly description: string
  /** Bottom to top; `path` is absolute. */
  readonly layers: ReadonlyArray<ScaleLayer>
  /** Tar entries over all layers (a path in two layers counts twice). */
  readonly entries: number
  /** Regular files' bytes over all layers, hardlinks once. */
  readonly fileBytes: number
  readonly uncompressedBytes: number
  readonly compressedBytes: number
  /** What the image was made of: host directories taken, synthetic sizes. */
  readonly inputs: Readonly<Record<string, unknown>>
}

const VERSION = 2
const GZIP_LEVEL = 6
const DEV_TARGET_BYTES = 1.5e9
const DEV_TARGET_ENTRIES = 80_000
/** Real trees for the dev image, in the order they are considered. */
const HOST_CANDIDATES = [
  "usr/share",
  "usr/include",
  "usr/lib/node_modules",
  "usr/lib/jvm",
  "root/.rustup",
  "usr/lib/gcc",
  "usr/lib/python3"
]

export const scaleCacheRoot = () => process.env.BANGER_BENCH_SCALE_DIR || path.join(repoRoot, ".bench", "scale")

/** Entries and regular files' bytes below `dir` (hard links counted once). */
const measure = async (dir: string) => {
  const seen = new Set<string>()
  let entries = 0
  let bytes = 0
  const walk = async (current: string) => {
    for (const entry of await fs.readdir(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name)
      entries++
      if (entry.isDirectory()) await walk(full)
      else if (entry.isFile()) {
        const stats: Stats = await fs.lstat(full)
        const key = `${stats.dev}:${stats.ino}`
        if (seen.has(key)) continue
        seen.add(key)
        bytes += stats.size
      }
    }
  }
  await walk(dir)
  return { entries, bytes }
}

const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`)

interface Plan {
  readonly description: string
  readonly inputs: Readonly<Record<string, unknown>>
  /** Writes the layers into `dir` (concurrently where it can). */
  readonly build: (dir: string) => Promise<ReadonlyArray<ScaleLayer>>
  readonly fileBytes: number
}

const devPlan = async (log: (message: string) => void): Promise<Plan> => {
  const rootfs = await debianRootfs({
    onBuilt: (info) => log(`debootstrap took ${(info.durationMs / 1000).toFixed(0)} s`)
  })
  const debian = await measure(rootfs)
  let bytes = debian.bytes
  let entries = debian.entries
  const hostDirs: Array<string> = []
  for (const dir of HOST_CANDIDATES) {
    if (bytes >= DEV_TARGET_BYTES) break
    const full = path.join("/", dir)
    if (!(await fs.lstat(full).catch(() => undefined))?.isDirectory()) continue
    const tree = await measure(full)
    // Whole trees only; one that would overshoot by more than a fifth is skipped for the next.
    if (bytes + tree.bytes > DEV_TARGET_BYTES * 1.2) continue
    hostDirs.push(dir)
    bytes += tree.bytes
    entries += tree.entries + 1
  }
  const synthetic = {
    seed: 80_000,
    root: "srv/app",
    files: Math.max(2_000, DEV_TARGET_ENTRIES - entries),
    bytes: Math.max(32 * 1024 * 1024, Math.ceil(DEV_TARGET_BYTES - bytes))
  }
  const tree = { ...synthetic, directories: Math.ceil(synthetic.files / 40) }
  const inputs = { debianBuiltAt: (await debianRootfsInfo())?.builtAt ?? "", hostDirs, synthetic: tree }
  return {
    description: `Debian minbase; /${hostDirs.join(", /")} from this host; a synthetic app tree (${tree.files} files, ${(tree.bytes / 1e6).toFixed(0)} MB)`,
    inputs,
    fileBytes: bytes + tree.bytes,
    build: (dir) =>
      Promise.all([
        layerFromDirectory(rootfs, { output: path.join(dir, "debian.tar.gz"), level: GZIP_LEVEL }).then((layer) => ({
          ...layer,
          name: "debian"
        })),
        layerFromDirectory("/", {
          output: path.join(dir, "host.tar.gz"),
          filter: (p) => hostDirs.some((hostDir) => under(p, hostDir) || under(hostDir, p)),
          level: GZIP_LEVEL
        }).then((layer) => ({ ...layer, name: "host" })),
        layerFromDirectory(undefined, {
          output: path.join(dir, "app.tar.gz"),
          extra: [whiteout("etc/motd")],
          stream: syntheticTree(tree),
          level: GZIP_LEVEL
        }).then((layer) => ({ ...layer, name: "app" }))
      ])
  }
}

const filesPlan = (): Plan => {
  const tree = { seed: 500_000, root: "srv/tree", directories: 5_000, files: 500_000, bytes: 500_000_000 }
  return {
    description: "500,000 synthetic files (500 MB) in 5,000 directories up to 24 deep",
    inputs: { synthetic: tree },
    fileBytes: tree.bytes,
    build: async (dir) => [
      {
        ...(await layerFromDirectory(undefined, {
          output: path.join(dir, "tree.tar.gz"),
          stream: syntheticTree(tree),
          level: GZIP_LEVEL
        })),
        name: "tree"
      }
    ]
  }
}

interface Stored extends Omit<ScaleImage, "layers"> {
  readonly version: number
  /** Paths relative to the image's directory, so a cache can be moved or shared. */
  readonly layers: ReadonlyArray<ScaleLayer>
  readonly builtAt: string
  readonly buildSeconds: number
}

const load = async (dir: string): Promise<ScaleImage | undefined> => {
  const stored = JSON.parse(
    await fs.readFile(path.join(dir, "image.json"), "utf8").catch(() => "null")
  ) as Stored | null
  if (stored?.version !== VERSION) return undefined
  const layers = stored.layers.map((layer) => ({ ...layer, path: path.join(dir, layer.path) }))
  for (const layer of layers) {
    const size = await fs.stat(layer.path).then(
      (stats) => stats.size,
      () => -1
    )
    if (size !== layer.size) return undefined
  }
  return { ...stored, layers }
}

/**
 * The image's layers, from the cache when a complete build is there, else built now (minutes: the
 * dev image gzips 1.5 GB). `force` rebuilds, e.g. after the host trees changed.
 */
export const buildScaleImage = async (
  name: ScaleImageName,
  options: { readonly force?: boolean; readonly log?: (message: string) => void } = {}
): Promise<ScaleImage> => {
  const log = options.log ?? ((message: string) => process.stderr.write(`[scale-images] ${message}\n`))
  const dir = path.join(scaleCacheRoot(), name)
  const debianBuiltAt = (await debianRootfsInfo())?.builtAt
  const cached = options.force ? undefined : await load(dir)
  // The dev image is rebuilt when the Debian fixture was; host trees are taken as they were.
  if (cached && (name !== "dev-80k" || cached.inputs.debianBuiltAt === debianBuiltAt)) return cached
  const plan = name === "dev-80k" ? await devPlan(log) : filesPlan()
  log(`building ${name} (once; cached in ${dir}): ${plan.description}`)
  const staging = `${dir}.tmp-${process.pid}`
  await fs.rm(staging, { recursive: true, force: true })
  await fs.mkdir(staging, { recursive: true })
  const started = performance.now()
  try {
    const layers = await plan.build(staging)
    const stored: Stored = {
      version: VERSION,
      name,
      description: plan.description,
      inputs: plan.inputs,
      layers: layers.map((layer) => ({ ...layer, path: path.basename(layer.path) })),
      entries: layers.reduce((sum, layer) => sum + layer.entries, 0),
      fileBytes: plan.fileBytes,
      uncompressedBytes: layers.reduce((sum, layer) => sum + layer.uncompressedSize, 0),
      compressedBytes: layers.reduce((sum, layer) => sum + layer.size, 0),
      builtAt: new Date().toISOString(),
      buildSeconds: Math.round((performance.now() - started) / 1000)
    }
    await fs.writeFile(path.join(staging, "image.json"), `${JSON.stringify(stored, null, 2)}\n`)
    await fs.rm(dir, { recursive: true, force: true })
    await fs.rename(staging, dir)
  } catch (error) {
    await fs.rm(staging, { recursive: true, force: true })
    throw error
  }
  const built = await load(dir)
  if (!built) throw new Error(`${name}: the build in ${dir} does not read back`)
  log(`built ${name} in ${((performance.now() - started) / 1000).toFixed(0)} s`)
  return built
}

const MB = 1e6

export const describeScaleImage = (image: ScaleImage) =>
  `${image.name}: ${image.layers.length} layer(s), ${image.entries} tar entries, ${(image.fileBytes / MB).toFixed(0)} MB of files, ${(image.uncompressedBytes / MB).toFixed(0)} MB tar, ${(image.compressedBytes / MB).toFixed(0)} MB gzip-${GZIP_LEVEL}; ${image.description}`

const cli = async (argv: ReadonlyArray<string>) => {
  const [command, which = "all", ...rest] = argv
  const force = rest.includes("--force") || which === "--force"
  const names = which === "all" || which === "--force" ? SCALE_IMAGES : [which]
  if (command !== "build" || names.some((n) => !(SCALE_IMAGES as ReadonlyArray<string>).includes(n))) {
    throw new Error(`usage: npx tsx bench/scale-images.ts build [all|${SCALE_IMAGES.join("|")}] [--force]`)
  }
  for (const name of names as ReadonlyArray<ScaleImageName>) {
    const image = await buildScaleImage(name, { force })
    console.log(describeScaleImage(image))
    for (const layer of image.layers) console.log(`  ${layer.path} ${layer.digest} (${layer.entries} entries)`)
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  cli(process.argv.slice(2)).catch((error) => {
    process.stderr.write(`scale-images: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exitCode = 1
  })
}
