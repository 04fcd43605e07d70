/**
 * Cold and warm `banger image pull` of a ~200 MB rootfs image from a local registry, side by side
 * with the peer toolchain on the same image: `skopeo copy` + `umoci unpack` + `mkfs.ext4 -d`.
 *
 *   npm run bench -- [--runs 5] [--banger-only] [--out FILE] [--cpu-prof DIR] [--mem-trace DIR] [--kernel K] [--initrd I]
 *
 * Cold: empty blob cache (banger: fresh state dir; toolchain: empty OCI layout). Warm: every layer
 * already cached (banger: same state dir, another --name; toolchain: skopeo into the same layout, so
 * it reuses the blobs, then a fresh unpack and mkfs). Runs are interleaved and alternate which side
 * goes first. Peak RSS is the banger node process's VmHWM, polled from /proc until it exits; its
 * child processes (mkfs.ext4, debugfs, e2fsck) are polled and reported separately.
 *
 * The image (Debian minbase split in three layers, plus a layer of real files from this host) is
 * built once and cached under `.bench/layers/`; a registry on 127.0.0.1 is started for each bench.
 * `--scale` runs bench/scale-bench.ts instead: one cold pull of this image and of the larger scale
 * images on each side, with an exactness check. See bench/README.md.
 */

import { spawnSync } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { repoRoot } from "../test/support/debian-rootfs.js"
import { pushImage, startRegistry, type TestRegistry } from "../test/support/registry.js"
import { benchLayers, GZIP_LEVEL } from "./bench-image.js"
import { cleanUpOnSignals, findKernel, log, preflight, scratchDir, throttlingProxy } from "./bench-setup.js"
import { runScale, SCALE_BENCH_IMAGES } from "./scale-bench.js"
import {
  type BangerContext,
  formatParts,
  MiB,
  mib,
  runBanger,
  runToolchain,
  type Sample,
  seconds,
  stopDaemon,
  summarize
} from "./sides.js"
import { running, setPollMs } from "./watch.js"

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  readonly runs: number
  readonly bangerOnly: boolean
  /** Where both sides write: a scratch ext4 on a loop device, or the temp dir's filesystem. */
  readonly fs: "loop" | "ram" | "tmp" | undefined
  readonly build: boolean
  /** Another checkout's bin/banger, built, to compare against (no build is run for it). */
  readonly banger: string
  /** MB/s for all blob and manifest bytes together, through a loopback proxy: a remote registry. */
  readonly bandwidth: number | undefined
  readonly out: string | undefined
  readonly cpuProf: string | undefined
  readonly memTrace: string | undefined
  readonly kernel: string | undefined
  readonly initrd: string | undefined
  /** How often the processes' memory and CPU are read from /proc. */
  readonly pollMs: number
  /** `--scale`: one cold pull of each of these images instead (bench/scale-bench.ts). */
  readonly scale: ReadonlyArray<string> | undefined
  readonly checkGoals: boolean
  readonly plot: string
}

const usage =
  "usage: npm run bench -- [--runs N] [--banger-only] [--fs loop|ram|tmp] [--no-build] [--banger PATH] [--bandwidth MBPS] [--out FILE] [--cpu-prof DIR] [--mem-trace DIR] [--kernel K] [--initrd I] [--poll-ms MS]\n       npm run bench -- --scale [--images bench,dev-80k,files-500k] [--check-goals] [--plot FILE] [--fs ...] [--no-build] [--banger PATH] [--out FILE]"

const parseArgs = (argv: ReadonlyArray<string>): Options => {
  const options: { -readonly [K in keyof Options]: Options[K] } = {
    runs: 5,
    bangerOnly: false,
    fs: undefined,
    build: true,
    banger: path.join(repoRoot, "bin", "banger"),
    bandwidth: undefined,
    out: undefined,
    cpuProf: undefined,
    memTrace: undefined,
    kernel: undefined,
    initrd: undefined,
    pollMs: 100,
    scale: undefined,
    checkGoals: false,
    plot: path.join(repoRoot, "bench", "scale-plot.svg")
  }
  let runsGiven = false
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!
    const value = () => {
      const next = argv[++index]
      if (next === undefined) throw new Error(`${arg} needs a value\n${usage}`)
      return next
    }
    switch (arg) {
      case "--runs":
        runsGiven = true
        options.runs = Number(value())
        if (!Number.isInteger(options.runs) || options.runs < 1) throw new Error(`--runs must be a positive integer`)
        break
      case "--banger-only":
        options.bangerOnly = true
        break
      case "--fs": {
        const kind = value()
        if (kind !== "loop" && kind !== "ram" && kind !== "tmp") {
          throw new Error(`--fs must be loop, ram or tmp\n${usage}`)
        }
        options.fs = kind
        break
      }
      case "--no-build":
        options.build = false
        break
      case "--bandwidth":
        options.bandwidth = Number(value())
        if (!(options.bandwidth > 0)) throw new Error("--bandwidth must be a positive number of MB/s")
        break
      case "--banger":
        options.banger = path.resolve(value())
        options.build = false
        break
      case "--out":
        options.out = path.resolve(value())
        break
      case "--cpu-prof":
        options.cpuProf = path.resolve(value())
        break
      case "--mem-trace":
        options.memTrace = path.resolve(value())
        break
      case "--kernel":
        options.kernel = path.resolve(value())
        break
      case "--initrd":
        options.initrd = path.resolve(value())
        break
      case "--poll-ms":
        options.pollMs = Number(value())
        if (!(options.pollMs >= 1)) throw new Error("--poll-ms must be a number of milliseconds, at least 1")
        break
      case "--scale":
        options.scale ??= SCALE_BENCH_IMAGES
        break
      case "--images": {
        const names = value().split(",")
        const unknown = names.filter((name) => !(SCALE_BENCH_IMAGES as ReadonlyArray<string>).includes(name))
        if (unknown.length > 0)
          throw new Error(`--images: unknown ${unknown.join(", ")} (${SCALE_BENCH_IMAGES.join(", ")})`)
        options.scale = names
        break
      }
      case "--check-goals":
        options.checkGoals = true
        break
      case "--plot":
        options.plot = path.resolve(value())
        break
      case "-h":
      case "--help":
        console.log(usage)
        process.exit(0)
        break
      default:
        throw new Error(`unknown argument ${arg}\n${usage}`)
    }
  }
  if (options.scale && (runsGiven || options.bangerOnly || options.bandwidth !== undefined)) {
    throw new Error(
      "--scale runs each image once, on both sides, from a local registry: no --runs, --banger-only or --bandwidth"
    )
  }
  return options
}

// ---------------------------------------------------------------------------------------------
// Main

const main = async () => {
  const options = parseArgs(process.argv.slice(2))
  setPollMs(options.pollMs)
  preflight(options)
  const { kernel, initrd } = await findKernel(options)
  if (options.build) {
    // Measure the code as it is now: tsc, then the bundle bin/banger prefers.
    log("npm run build")
    const built = spawnSync("npm", ["run", "--silent", "build"], { cwd: repoRoot, stdio: ["ignore", 2, 2] })
    if (built.status !== 0) throw new Error("npm run build failed")
  }
  if (options.cpuProf) await fs.mkdir(options.cpuProf, { recursive: true })
  if (options.memTrace) await fs.mkdir(options.memTrace, { recursive: true })
  if (options.scale) return runScale({ ...options, images: options.scale, kernel, initrd })
  const layers = await benchLayers()
  const uncompressed = layers.reduce((sum, layer) => sum + layer.uncompressedSize, 0)
  const compressed = layers.reduce((sum, layer) => sum + layer.size, 0)
  const entries = layers.reduce((sum, layer) => sum + layer.entries, 0)
  log(
    `image: ${layers.length} layers, ${mib(uncompressed)} uncompressed, ${mib(compressed)} gzip-${GZIP_LEVEL}, ${entries} tar entries`
  )

  let registry: TestRegistry | undefined
  let proxy: Awaited<ReturnType<typeof throttlingProxy>> | undefined
  const scratch = await scratchDir(options.fs)
  const workRoot = scratch.dir
  log(
    `working in ${scratch.kind === "tmp" ? workRoot : `a scratch ext4 on a loop device${scratch.kind === "ram" ? " backed by /dev/shm" : ""}`}`
  )
  let current: BangerContext | undefined
  const cleanup = async () => {
    for (const child of running) child.kill("SIGKILL")
    if (current) await stopDaemon(current)
    await proxy?.stop()
    await registry?.stop()
    await scratch.release()
  }
  cleanUpOnSignals(cleanup)

  try {
    registry = await startRegistry()
    await pushImage(registry, "bench", "1", { layers })
    if (options.bandwidth !== undefined) proxy = await throttlingProxy(registry.host, options.bandwidth)
    const ref = `${proxy?.host ?? registry.host}/bench:1`
    log(
      `pushed ${ref}; ${options.runs} run(s)${options.bangerOnly ? ", banger only" : ""}${options.bandwidth ? `; registry throttled to ${options.bandwidth} MB/s` : ""}`
    )

    const samples = {
      bangerCold: [] as Array<Sample>,
      bangerWarm: [] as Array<Sample>,
      toolchainCold: [] as Array<Sample>,
      toolchainWarm: [] as Array<Sample>
    }
    let imageSize = 0
    for (let run = 0; run < options.runs; run++) {
      const workDir = path.join(workRoot, `run-${run}`)
      await fs.mkdir(workDir)
      const banger: BangerContext = {
        bin: options.banger,
        ref,
        stateDir: path.join(workDir, "state"),
        kernel,
        ...(initrd ? { initrd } : {})
      }
      current = banger
      const toolchain = { ref, ociDir: path.join(workDir, "oci"), workDir }
      const bangerCold = async () => {
        const { sample, sizeBytes } = await runBanger(banger, "bench-cold", options)
        samples.bangerCold.push(sample)
        imageSize = sizeBytes
        log(
          `run ${run + 1} banger cold     ${seconds(sample.wallMs)}  rss ${mib(sample.peakRss)}  (${formatParts(sample.parts)})`
        )
      }
      const bangerWarm = async () => {
        const { sample } = await runBanger(banger, "bench-warm", options)
        samples.bangerWarm.push(sample)
        log(
          `run ${run + 1} banger warm     ${seconds(sample.wallMs)}  rss ${mib(sample.peakRss)}  (${formatParts(sample.parts)})`
        )
      }
      const toolchainCold = async () => {
        const { sample } = await runToolchain(toolchain, "cold", { sizeBytes: imageSize })
        samples.toolchainCold.push(sample)
        log(`run ${run + 1} toolchain cold  ${seconds(sample.wallMs)}  (${formatParts(sample.parts)})`)
      }
      const toolchainWarm = async () => {
        const { sample } = await runToolchain(toolchain, "warm", { sizeBytes: imageSize })
        samples.toolchainWarm.push(sample)
        log(`run ${run + 1} toolchain warm  ${seconds(sample.wallMs)}  (${formatParts(sample.parts)})`)
      }
      // The toolchain needs banger's size, so the very first run starts with banger; after that the
      // sides take turns going first.
      const order = options.bangerOnly
        ? [bangerCold, bangerWarm]
        : run % 2 === 0 || imageSize === 0
          ? [bangerCold, toolchainCold, bangerWarm, toolchainWarm]
          : [toolchainCold, bangerCold, toolchainWarm, bangerWarm]
      for (const step of order) {
        // Each side starts with nothing of the other's left to write back, outside the timing.
        spawnSync("sync")
        await step()
      }
      await stopDaemon(banger)
      await fs.rm(workDir, { recursive: true, force: true })
    }

    const results = {
      date: new Date().toISOString(),
      host: {
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model,
        memoryBytes: os.totalmem(),
        node: process.version
      },
      image: {
        ref: "bench:1",
        layers: layers.map((layer) => ({
          name: layer.name,
          size: layer.size,
          uncompressedSize: layer.uncompressedSize,
          entries: layer.entries
        })),
        uncompressedBytes: uncompressed,
        compressedBytes: compressed,
        gzipLevel: GZIP_LEVEL,
        rootfsSizeBytes: imageSize
      },
      runs: options.runs,
      filesystem: scratch.kind,
      bandwidthMBps: options.bandwidth ?? null,
      bangerBin: options.banger,
      banger: { cold: summarize(samples.bangerCold), warm: summarize(samples.bangerWarm) },
      toolchain: options.bangerOnly
        ? undefined
        : { cold: summarize(samples.toolchainCold), warm: summarize(samples.toolchainWarm) },
      samples
    }
    const ratio = (side: "cold" | "warm") =>
      results.toolchain ? results.banger[side].medianMs / results.toolchain[side].medianMs : undefined

    const rows: Array<Array<string>> = [["", "banger", "toolchain", "banger/toolchain"]]
    for (const side of ["cold", "warm"] as const) {
      const tool = results.toolchain?.[side]
      rows.push([
        `${side} (median of ${options.runs})`,
        seconds(results.banger[side].medianMs),
        tool ? seconds(tool.medianMs) : "-",
        tool ? `${ratio(side)!.toFixed(2)}×` : "-"
      ])
    }
    const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
    const table = rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ")).join("\n")
    const lines = [
      "",
      table,
      "",
      `banger peak RSS (VmHWM of the node process that pulls: the daemon, over cold then warm): cold ${mib(results.banger.cold.peakRss)}, warm ${mib(results.banger.warm.peakRss)}; CLI process ${mib(results.banger.cold.cliPeakRss ?? 0)}`,
      `banger RSS by stage, cold (max VmRSS, MiB): ${Object.entries(results.banger.cold.stageRss)
        .map(([name, rss]) => `${name} ${(rss / MiB).toFixed(0)}`)
        .join(", ")}`,
      `banger CPU (daemon + CLI, median): cold ${results.banger.cold.medianCpuSeconds?.toFixed(2)} s, warm ${results.banger.warm.medianCpuSeconds?.toFixed(2)} s`,
      `banger children: ${Object.entries(results.banger.cold.children)
        .map(([name, child]) => `${name} ${mib(child.peakRss)} ${seconds(child.medianMs)}`)
        .join(", ")}`,
      `banger stages, cold (median s): ${formatParts(results.banger.cold.parts)}`,
      `banger stages, warm (median s): ${formatParts(results.banger.warm.parts)}`,
      ...(results.toolchain
        ? [
            `toolchain steps, cold (median s): ${formatParts(results.toolchain.cold.parts)}`,
            `toolchain steps, warm (median s): ${formatParts(results.toolchain.warm.parts)}`,
            `toolchain peak RSS: ${Object.entries(results.toolchain.cold.children)
              .map(([name, child]) => `${name} ${mib(child.peakRss)}`)
              .join(", ")}`
          ]
        : []),
      ""
    ]
    console.log(lines.join("\n"))
    const out =
      options.out ?? path.join(repoRoot, ".bench", "results", `pull-${results.date.replace(/[:.]/g, "-")}.json`)
    await fs.mkdir(path.dirname(out), { recursive: true })
    await fs.writeFile(out, `${JSON.stringify(results, null, 2)}\n`)
    log(`results: ${path.relative(process.cwd(), out)}`)
  } finally {
    await cleanup()
  }
}

main().catch((error) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 1
})
