/**
 * `npm run bench -- --scale`: how a cold pull grows with the image. For the pull bench's image and
 * the scale images (bench/scale-images.ts), one cold `banger image pull` (fresh state dir, daemon
 * started by the CLI) and one toolchain run (skopeo copy + umoci unpack + du + mkfs.ext4 -d -N,
 * sized from allocated bytes), then banger's ext4, mounted read-only, compared entry by entry with
 * umoci's unpacked tree. Prints a table, writes the JSON to .bench/results/ and the plot to
 * bench/scale-plot.svg. Exits non-zero on any difference in the trees (and, with --check-goals, on a
 * missed memory goal).
 */

import { spawnSync } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { repoRoot } from "../test/support/debian-rootfs.js"
import { pushImage, startRegistry, type TestRegistry } from "../test/support/registry.js"
import type { LayerFile } from "../test/support/rootfs-layers.js"
import { benchLayers } from "./bench-image.js"
import { cleanUpOnSignals, log, onPath, runQuiet, type ScratchKind, scratchDir } from "./bench-setup.js"
import { buildScaleImage, SCALE_IMAGES } from "./scale-images.js"
import { type PlotPoint, scalePlotSvg } from "./scale-plot.js"
import { type BangerContext, formatParts, MiB, mib, runBanger, runToolchain, seconds, stopDaemon } from "./sides.js"
import { compareTrees, formatDifferences, type TreeComparison } from "./tree-compare.js"
import { readStatus, running } from "./watch.js"

export const SCALE_BENCH_IMAGES = ["bench", ...SCALE_IMAGES] as const

export interface ScaleOptions {
  readonly images: ReadonlyArray<string>
  readonly fs: ScratchKind | undefined
  readonly banger: string
  readonly kernel: string
  readonly initrd: string | undefined
  readonly cpuProf: string | undefined
  readonly memTrace: string | undefined
  readonly out: string | undefined
  readonly plot: string
  readonly checkGoals: boolean
}

/** The issue's goals per image: cold ratio to the toolchain; memory is the same for all. */
const RATIO_GOAL: Readonly<Record<string, number>> = { bench: 0.45, "dev-80k": 0.1, "files-500k": 0.05 }
const PEAK_GOAL = 200 * MiB
const AFTER_GOAL = 100 * MiB
const AFTER_MS = 5_000

interface Source {
  readonly layers: ReadonlyArray<LayerFile>
  readonly description: string
}

const source = async (name: string): Promise<Source> =>
  name === "bench"
    ? { layers: await benchLayers(), description: "the pull bench's image (Debian minbase + host files)" }
    : buildScaleImage(name as (typeof SCALE_IMAGES)[number])

/** The daemon's VmRSS each second after the pull ended, up to AFTER_MS. */
const rssAfter = async (pid: number | undefined) => {
  const samples: Array<readonly [ms: number, rss: number]> = []
  if (pid === undefined) return samples
  const started = performance.now()
  for (let ms = 1000; ms <= AFTER_MS; ms += 1000) {
    await new Promise((resolve) => setTimeout(resolve, started + ms - performance.now()))
    const status = await readStatus(pid)
    if (status) samples.push([ms, status.rss])
  }
  return samples
}

/** Banger's ext4, mounted read-only (no journal replay) for the length of `use`. */
const withReadOnlyMount = async <A>(image: string, mountPoint: string, use: (dir: string) => Promise<A>) => {
  await fs.mkdir(mountPoint, { recursive: true })
  runQuiet("mount", ["-o", "loop,ro,noload", image, mountPoint])
  try {
    return await use(mountPoint)
  } finally {
    try {
      runQuiet("umount", [mountPoint])
    } catch (error) {
      log(`${error instanceof Error ? error.message.trim() : error}; detaching lazily`)
      runQuiet("umount", ["-l", mountPoint])
    }
  }
}

const commit = () => {
  const head = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: repoRoot, encoding: "utf8" }).stdout.trim()
  const dirty = spawnSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: repoRoot, encoding: "utf8" })
  return `${head}${dirty.stdout.trim() === "" ? "" : "-dirty"}`
}

export const runScale = async (options: ScaleOptions) => {
  if (process.getuid?.() !== 0) throw new Error("--scale runs as root (umoci's ownership, read-only loop mounts)")
  for (const [tool, pkg] of [
    ["getfattr", "attr"],
    ["du", "coreutils"]
  ] as const) {
    if (!onPath(tool)) throw new Error(`missing ${tool}; on Debian: apt-get install ${pkg}`)
  }
  const measured = commit()
  const images: Array<Source & { readonly name: string }> = []
  for (const name of options.images) images.push({ name, ...(await source(name)) })

  // Room for the largest image three times over (blobs, banger's ext4, umoci's tree, mkfs's ext4);
  // the loop file is sparse.
  const scratch = await scratchDir(options.fs, 48 * 1024 ** 3)
  let registry: TestRegistry | undefined
  let current: BangerContext | undefined
  const cleanup = async () => {
    for (const child of running) child.kill("SIGKILL")
    if (current) await stopDaemon(current)
    await registry?.stop()
    await scratch.release()
  }
  cleanUpOnSignals(cleanup)

  const rows: Array<Row> = []
  try {
    registry = await startRegistry()
    for (const image of images) await pushImage(registry, image.name, "1", { layers: image.layers })
    log(`pushed ${images.map((image) => image.name).join(", ")} to ${registry.host}`)
    for (const image of images) {
      const workDir = path.join(scratch.dir, image.name)
      await fs.mkdir(workDir)
      const ref = `${registry.host}/${image.name}:1`
      current = {
        bin: options.banger,
        ref,
        stateDir: path.join(workDir, "state"),
        kernel: options.kernel,
        ...(options.initrd ? { initrd: options.initrd } : {})
      }
      spawnSync("sync")
      const banger = await runBanger(current, `scale-${image.name}`, options)
      const after = await rssAfter(current.daemonPid)
      await stopDaemon(current)
      log(
        `${image.name}: banger cold ${seconds(banger.sample.wallMs)}, daemon peak ${mib(banger.sample.peakRss)}, ${mib(after.at(-1)?.[1] ?? 0)} ${AFTER_MS / 1000} s later (${formatParts(banger.sample.parts)})`
      )
      spawnSync("sync")
      const toolchain = await runToolchain({ ref, ociDir: path.join(workDir, "oci"), workDir }, "cold", "allocated")
      log(`${image.name}: toolchain cold ${seconds(toolchain.sample.wallMs)} (${formatParts(toolchain.sample.parts)})`)
      const started = performance.now()
      const comparison = await withReadOnlyMount(banger.rootfs, path.join(workDir, "banger-mnt"), (dir) =>
        compareTrees(toolchain.rootfs, dir, { extraAtRoot: ["lost+found"] })
      )
      log(
        `${image.name}: compared ${comparison.entries} entries in ${seconds(performance.now() - started)}: ${comparison.differences === 0 ? "identical" : `${comparison.differences} differences`}`
      )
      if (comparison.differences > 0) process.stderr.write(`${formatDifferences(comparison)}\n`)
      rows.push({ image, banger: { ...banger.sample, rssAfter: after }, toolchain: toolchain.sample, comparison })
      await fs.rm(workDir, { recursive: true, force: true })
    }
    current = undefined
  } finally {
    await cleanup()
  }
  return report(rows, options, measured)
}

interface Row {
  readonly image: Source & { readonly name: string }
  readonly banger: Awaited<ReturnType<typeof runBanger>>["sample"] & {
    readonly rssAfter: ReadonlyArray<readonly [number, number]>
  }
  readonly toolchain: Awaited<ReturnType<typeof runToolchain>>["sample"]
  readonly comparison: TreeComparison
}

const afterRss = (row: Row) => row.banger.rssAfter.at(-1)?.[1] ?? 0

const goals = (row: Row) => {
  const ratio = row.banger.wallMs / row.toolchain.wallMs
  const ratioGoal = RATIO_GOAL[row.image.name]
  return {
    ratio,
    ratioMet: ratioGoal === undefined ? undefined : ratio <= ratioGoal,
    peakMet: row.banger.peakRss <= PEAK_GOAL,
    afterMet: afterRss(row) <= AFTER_GOAL
  }
}

const table = (rows: ReadonlyArray<Row>) => {
  const mark = (met: boolean | undefined) => (met === undefined ? "" : met ? " ✓" : " ✗")
  const cells = [
    ["image", "entries", "tree", "banger", "peak RSS", "RSS +5 s", "toolchain", "ratio", "exact"],
    ...rows.map((row) => {
      const goal = goals(row)
      return [
        row.image.name,
        row.comparison.entries.toLocaleString("en-US"),
        `${(row.comparison.fileBytes / 1e6).toFixed(0)} MB`,
        seconds(row.banger.wallMs),
        `${mib(row.banger.peakRss)}${mark(goal.peakMet)}`,
        `${mib(afterRss(row))}${mark(goal.afterMet)}`,
        seconds(row.toolchain.wallMs),
        `${goal.ratio.toFixed(3)}×${mark(goal.ratioMet)}`,
        row.comparison.differences === 0 ? "yes" : `NO (${row.comparison.differences})`
      ]
    })
  ]
  const widths = cells[0]!.map((_, column) => Math.max(...cells.map((row) => row[column]!.length)))
  return cells.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ")).join("\n")
}

const report = async (rows: ReadonlyArray<Row>, options: ScaleOptions, measured: string) => {
  const date = new Date().toISOString()
  const results = {
    date,
    commit: measured,
    host: { cpus: os.cpus().length, memoryBytes: os.totalmem(), node: process.version, loadavg: os.loadavg() },
    filesystem: options.fs ?? "loop",
    bangerBin: options.banger,
    goals: { ratio: RATIO_GOAL, peakRss: PEAK_GOAL, rssAfter: AFTER_GOAL, afterMs: AFTER_MS },
    images: rows.map((row) => ({
      name: row.image.name,
      description: row.image.description,
      layers: row.image.layers.map((layer) => ({
        size: layer.size,
        uncompressedSize: layer.uncompressedSize,
        entries: layer.entries
      })),
      entries: row.comparison.entries,
      treeBytes: row.comparison.fileBytes,
      banger: row.banger,
      toolchain: row.toolchain,
      ...goals(row),
      exactness: {
        differences: row.comparison.differences,
        first: row.comparison.first,
        hardlinkGroups: row.comparison.hardlinkGroups,
        xattrEntries: row.comparison.xattrEntries
      }
    }))
  }
  const lines = [
    "",
    table(rows),
    "",
    "peak RSS: the banger daemon's VmHWM; RSS +5 s: its VmRSS 5 s after the CLI exited; toolchain: skopeo + umoci + du + mkfs.ext4 -d -N",
    ...rows.map(
      (row) =>
        `${row.image.name}: banger stages ${formatParts(row.banger.parts)}; CPU ${row.banger.cpuSeconds?.toFixed(1)} s; RSS after ${row.banger.rssAfter.map(([ms, rss]) => `${ms / 1000}s ${(rss / MiB).toFixed(0)}`).join(", ")} MiB; toolchain ${formatParts(row.toolchain.parts)}, peak ${mib(row.toolchain.peakRss)}`
    ),
    ""
  ]
  console.log(lines.join("\n"))
  const out = options.out ?? path.join(repoRoot, ".bench", "results", `scale-${date.replace(/[:.]/g, "-")}.json`)
  await fs.mkdir(path.dirname(out), { recursive: true })
  await fs.writeFile(out, `${JSON.stringify(results, null, 2)}\n`)
  log(`results: ${path.relative(process.cwd(), out)}`)
  const points: Array<PlotPoint> = rows.map((row) => ({
    name: row.image.name,
    entries: row.comparison.entries,
    bangerMs: row.banger.wallMs,
    toolchainMs: row.toolchain.wallMs,
    bangerPeakRss: row.banger.peakRss,
    bangerRssAfter: afterRss(row),
    toolchainPeakRss: row.toolchain.peakRss
  }))
  if (points.length > 1) {
    await fs.writeFile(
      options.plot,
      scalePlotSvg(points, `npm run bench -- --scale, ${date.slice(0, 16).replace("T", " ")} UTC, ${results.commit}`)
    )
    log(`plot: ${path.relative(process.cwd(), options.plot)}`)
  }
  const inexact = rows.filter((row) => row.comparison.differences > 0)
  if (inexact.length > 0) {
    throw new Error(
      `banger's tree differs from umoci's for ${inexact.map((row) => `${row.image.name} (${row.comparison.differences} differences)`).join(", ")}`
    )
  }
  const missed = rows.filter((row) => !goals(row).peakMet || !goals(row).afterMet)
  if (options.checkGoals && missed.length > 0) {
    throw new Error(`memory goals missed for ${missed.map((row) => row.image.name).join(", ")}`)
  }
}
