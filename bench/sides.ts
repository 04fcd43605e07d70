/** One cold or warm pull by each side, banger and the peer toolchain, measured; and the statistics over runs. */
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { stageText } from "../src/cli/pull-progress.js"
import { repoRoot } from "../test/support/debian-rootfs.js"
import { gone } from "./proc.js"
import { check, daemonsOf, type ProcessPeak, type Watched, watch } from "./watch.js"

// ---------------------------------------------------------------------------------------------
// The two sides

/** The pull's stages, announced on stderr when it is not a terminal. */
const STAGES = ["resolve", "fetch", "flatten", "size", "write-ext4", "stage-boot", "publish"] as const
/** Stage by its line, `banger: <stage text>…` (the CLI's plain progress form). */
const STAGE_LINES = new Map<string, string>(STAGES.map((stage) => [`banger: ${stageText[stage]}…`, stage]))

export interface Sample {
  readonly wallMs: number
  /** Named parts of the wall time, ms. */
  readonly parts: Readonly<Record<string, number>>
  /** VmHWM of the process that did the work: banger's daemon when there is one (over its life so far). */
  readonly peakRss: number
  /** banger: the CLI process's own VmHWM. */
  readonly cliPeakRss?: number
  /** banger: CPU seconds of the process that did the work, during this command. */
  readonly cpuSeconds?: number
  /** banger: the largest VmRSS of the working process polled in each stage. */
  readonly stageRss?: Readonly<Record<string, number>>
  readonly children: ReadonlyArray<ProcessPeak>
}

/** Time spent in each stage the CLI reported, and the largest VmRSS polled during it. */
const stageTimes = (result: Watched, rssSamples: ReadonlyArray<readonly [number, number]>) => {
  const marks = result.stderrLines.flatMap(([ms, line]) => {
    const stage = STAGE_LINES.get(line.trim())
    return stage === undefined ? [] : [[ms, stage] as const]
  })
  const spans: Array<readonly [name: string, start: number, end: number]> = []
  if (marks.length > 0) spans.push(["startup", 0, marks[0]![0]])
  for (const [index, [ms, line]] of marks.entries()) {
    spans.push([line.trim(), ms, index + 1 < marks.length ? marks[index + 1]![0] : result.wallMs])
  }
  const parts: Record<string, number> = {}
  const stageRss: Record<string, number> = {}
  for (const [name, start, end] of spans) {
    parts[name] = (parts[name] ?? 0) + end - start
    for (const [ms, rss] of rssSamples) {
      if (ms >= start && ms < end) stageRss[name] = Math.max(stageRss[name] ?? 0, rss)
    }
  }
  return { parts, stageRss }
}

export interface BangerContext {
  readonly bin: string
  readonly ref: string
  readonly stateDir: string
  readonly kernel: string
  readonly initrd?: string
  /** The daemon the first pull started (the CLI starts one per state dir when none answers). */
  daemonPid?: number | undefined
}

export interface Tracing {
  readonly cpuProf: string | undefined
  readonly memTrace: string | undefined
}

/** Through the environment, so that a daemon the CLI starts is traced too (the hooks write on exit). */
const tracingEnv = (tracing: Tracing): Record<string, string> | undefined => {
  const hooks: Array<string> = []
  const env: Record<string, string> = {}
  if (tracing.cpuProf) {
    hooks.push("cpu-profile.mjs")
    env.BANGER_BENCH_CPU_PROF = tracing.cpuProf
  }
  if (tracing.memTrace) {
    hooks.push("mem-trace.mjs")
    env.BANGER_BENCH_MEM_TRACE = tracing.memTrace
  }
  if (hooks.length === 0) return undefined
  env.NODE_OPTIONS = hooks.map((hook) => `--import=${pathToFileURL(path.join(repoRoot, "bench", hook)).href}`).join(" ")
  return env
}

export const runBanger = async (context: BangerContext, name: string, tracing: Tracing) => {
  const args = [
    context.bin,
    "--state-dir",
    context.stateDir,
    "image",
    "pull",
    context.ref,
    "--name",
    name,
    "--kernel",
    context.kernel,
    ...(context.initrd ? ["--initrd", context.initrd] : []),
    "--json"
  ]
  const env = tracingEnv(tracing)
  const result = check(
    `banger image pull (${name})`,
    await watch(process.execPath, args, { stateDir: context.stateDir, daemonPid: context.daemonPid, env })
  )
  if (result.daemon) context.daemonPid = result.daemon.pid
  const image = JSON.parse(result.stdout) as { sizeBytes: number; rootfs: string }
  const { parts, stageRss } = stageTimes(result, result.daemon?.rssSamples ?? result.rssSamples)
  const sample: Sample = {
    wallMs: result.wallMs,
    parts,
    stageRss,
    peakRss: result.daemon?.peakRss ?? result.peakRss,
    cliPeakRss: result.peakRss,
    cpuSeconds: result.daemon ? result.daemon.cpuSeconds + result.cpuSeconds : result.cpuSeconds,
    children: result.children
  }
  return { sample, sizeBytes: image.sizeBytes, rootfs: image.rootfs }
}

/** SIGTERM (then SIGKILL) for the daemon our pulls started, checked to still be that daemon. */
export const stopDaemon = async (context: BangerContext) => {
  context.daemonPid = undefined
  for (const pid of await daemonsOf(context.stateDir)) {
    process.kill(pid, "SIGTERM")
    if (!(await gone(pid, 10_000))) {
      process.kill(pid, "SIGKILL")
      await gone(pid, 5_000)
    }
  }
}

/**
 * How the toolchain's mkfs.ext4 is sized: banger's own image size (the pull bench), or what a
 * careful user does on a file-heavy tree: `du` the unpacked tree, then a size from its allocated
 * bytes (small files take a block each) and an inode count (`-N`) from its inodes, with headroom.
 * mkfs.ext4's defaults (an inode per 16 KiB, the apparent size) run out on such trees.
 */
export type ToolchainSizing = { readonly sizeBytes: number } | "allocated"

const duNumber = async (label: string, args: ReadonlyArray<string>, parts: Record<string, number>) => {
  const result = check(`du (${label})`, await watch("du", args))
  parts.du = (parts.du ?? 0) + result.wallMs
  return Number(result.stdout.split(/\s/)[0])
}

export const runToolchain = async (
  context: { readonly ref: string; readonly ociDir: string; readonly workDir: string },
  label: string,
  sizing: ToolchainSizing
) => {
  const bundle = path.join(context.workDir, `bundle-${label}`)
  const rootfs = path.join(bundle, "rootfs")
  const image = path.join(context.workDir, `toolchain-${label}.ext4`)
  const rootless = process.getuid?.() !== 0
  const parts: Record<string, number> = {}
  const children: Array<ProcessPeak> = []
  let wallMs = 0
  let peakRss = 0
  const step = async (part: string, command: string, args: ReadonlyArray<string>) => {
    const result = check(`${command} (${label})`, await watch(command, args))
    parts[part] = result.wallMs
    wallMs += result.wallMs
    peakRss = Math.max(peakRss, result.peakRss)
    children.push({ name: command, peakRss: result.peakRss, firstSeen: 0, lastSeen: result.wallMs }, ...result.children)
  }
  await step("skopeo", "skopeo", [
    "copy",
    "--quiet",
    "--src-tls-verify=false",
    `docker://${context.ref}`,
    `oci:${context.ociDir}:1`
  ])
  await step("umoci", "umoci", [
    "unpack",
    ...(rootless ? ["--rootless"] : []),
    "--image",
    `${context.ociDir}:1`,
    bundle
  ])
  let mkfsSize: string
  let inodes: ReadonlyArray<string> = []
  if (sizing === "allocated") {
    const allocated = await duNumber(label, ["-s", "-B1", rootfs], parts)
    const count = await duNumber(label, ["-s", "--inodes", rootfs], parts)
    wallMs += parts.du!
    // A fifth more of both, plus room for the journal and the metadata of a small tree.
    mkfsSize = `${Math.ceil((allocated * 1.2 + 256 * 1024 * 1024) / 1024 / 1024)}M`
    inodes = ["-N", String(Math.ceil(count * 1.2 + 4096))]
  } else {
    mkfsSize = `${Math.floor(sizing.sizeBytes / 1024)}k`
  }
  await step("mkfs", "mkfs.ext4", ["-q", "-F", ...inodes, "-d", rootfs, image, mkfsSize])
  const sample: Sample = { wallMs, parts, peakRss, children }
  return { sample, rootfs, image }
}

// ---------------------------------------------------------------------------------------------
// Statistics and output

export const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

export const MiB = 1024 * 1024
export const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`
export const mib = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`

const medianParts = (samples: ReadonlyArray<Sample>) => {
  const names = [...new Set(samples.flatMap((sample) => Object.keys(sample.parts)))]
  return Object.fromEntries(names.map((name) => [name, median(samples.map((sample) => sample.parts[name] ?? 0))]))
}

/** Per process name: the largest VmHWM and the median total time it was seen running. */
const childPeaks = (samples: ReadonlyArray<Sample>) => {
  const names = [...new Set(samples.flatMap((sample) => sample.children.map((child) => child.name)))]
  return Object.fromEntries(
    names.map((name) => [
      name,
      {
        peakRss: Math.max(...samples.flatMap((s) => s.children.filter((c) => c.name === name).map((c) => c.peakRss))),
        medianMs: median(
          samples.map((s) =>
            s.children.filter((c) => c.name === name).reduce((sum, c) => sum + c.lastSeen - c.firstSeen, 0)
          )
        )
      }
    ])
  )
}

export const summarize = (samples: ReadonlyArray<Sample>) => ({
  medianMs: median(samples.map((s) => s.wallMs)),
  minMs: Math.min(...samples.map((s) => s.wallMs)),
  maxMs: Math.max(...samples.map((s) => s.wallMs)),
  peakRss: Math.max(...samples.map((s) => s.peakRss)),
  cliPeakRss: samples.some((s) => s.cliPeakRss !== undefined)
    ? Math.max(...samples.map((s) => s.cliPeakRss ?? 0))
    : undefined,
  medianCpuSeconds: samples.every((s) => s.cpuSeconds !== undefined)
    ? median(samples.map((s) => s.cpuSeconds!))
    : undefined,
  parts: medianParts(samples),
  stageRss: Object.fromEntries(
    [...new Set(samples.flatMap((s) => Object.keys(s.stageRss ?? {})))].map((name) => [
      name,
      Math.max(...samples.map((s) => s.stageRss?.[name] ?? 0))
    ])
  ),
  children: childPeaks(samples)
})

export const formatParts = (parts: Readonly<Record<string, number>>) =>
  Object.entries(parts)
    .map(([name, ms]) => `${name} ${(ms / 1000).toFixed(2)}`)
    .join(", ")
