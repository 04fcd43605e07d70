/**
 * `banger vm create` of a local Debian image under QEMU TCG, from the CLI's start to the VMM
 * process started and to the guest's ready line, per step, with the state dir on an XFS scratch
 * filesystem (the work disk is a reflink) and on the ordinary disk (a sparse copy).
 *
 *   npm run bench:vm -- [--runs 5] [--scenario xfs|disk|both] [--disk-size 8G] [--no-build] [--out FILE]
 *
 * The image is the test harness's debootstrap Debian (systemd, the golden package list), pushed to a
 * registry on 127.0.0.1 and pulled once per scenario with the host's Debian cloud kernel and initrd.
 * Each run is `vm create` then `vm delete --force`; the scenarios take turns, run by run. The
 * daemon's own step times (to the VMM process spawned, and to QMP answering) come from the line
 * it logs for each create; when the operation began from `op list`; stage times from when the
 * CLI printed each stage (stderr is not a terminal, so it prints one line per stage). See
 * bench/README.md.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { stageText } from "../src/cli/pull-progress.js"
import { debianRootfs, repoRoot } from "../test/support/debian-rootfs.js"
import { findCloudKernel } from "../test/support/qemu.js"
import { pushImage, startRegistry, type TestRegistry } from "../test/support/registry.js"
import { layerFromDirectory } from "../test/support/rootfs-layers.js"
import { answers } from "../test/support/socket-answers.js"
import { cleanUpOnSignals, log } from "./bench-setup.js"
import { gone, readCmdline } from "./proc.js"

type ScenarioName = "xfs" | "disk"

interface Options {
  readonly runs: number
  readonly scenarios: ReadonlyArray<ScenarioName>
  readonly diskSize: string
  readonly build: boolean
  readonly out: string | undefined
  /** Networked creates (tap, nftables, sshd waited for), each daemon in a network namespace of its own. */
  readonly network: boolean
}

const usage =
  "usage: npm run bench:vm -- [--runs N] [--scenario xfs|disk|both] [--disk-size S] [--network] [--no-build] [--out FILE]"

const parseArgs = (argv: ReadonlyArray<string>): Options => {
  let runs = 5
  let scenarios: ReadonlyArray<ScenarioName> = ["xfs", "disk"]
  let diskSize = "8G"
  let build = true
  let out: string | undefined
  let network = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = () => {
      const next = argv[++i]
      if (next === undefined) throw new Error(`${arg} needs a value\n${usage}`)
      return next
    }
    if (arg === "--runs") runs = Number(value())
    else if (arg === "--scenario") {
      const wanted = value()
      if (wanted !== "xfs" && wanted !== "disk" && wanted !== "both") throw new Error(usage)
      scenarios = wanted === "both" ? ["xfs", "disk"] : [wanted]
    } else if (arg === "--disk-size") diskSize = value()
    else if (arg === "--no-build") build = false
    else if (arg === "--out") out = value()
    else if (arg === "--network") network = true
    else throw new Error(`unknown argument ${arg}\n${usage}`)
  }
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer\n${usage}`)
  return { runs, scenarios, diskSize, build, out, network }
}

const runQuiet = (command: string, args: ReadonlyArray<string>) => {
  const result = spawnSync(command, args, { encoding: "utf8" })
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")}: ${result.stderr || result.error}`)
  return result.stdout
}

const timed = (command: string, args: ReadonlyArray<string>) => {
  const began = performance.now()
  runQuiet(command, args)
  return performance.now() - began
}

// ---------------------------------------------------------------------------------------------
// Where the state dir lives

interface Scratch {
  readonly dir: string
  readonly describe: string
  readonly release: () => Promise<void>
}

/** A directory on the ordinary disk: the temp dir's filesystem (ext4 here). */
const diskScratch = async (): Promise<Scratch> => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "banger-vmbench-"))
  const type = runQuiet("findmnt", ["-n", "-o", "FSTYPE", "-T", root]).trim()
  return { dir: root, describe: `${root} (${type})`, release: () => fs.rm(root, { recursive: true, force: true }) }
}

/** A fresh XFS with reflinks on a loop device, its backing file sparse; unmounted and removed by release. */
const xfsScratch = async (): Promise<Scratch> => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "banger-vmbench-xfs-"))
  const image = path.join(root, "scratch.xfs")
  const mountPoint = path.join(root, "mnt")
  let mounted = false
  const release = async () => {
    if (mounted) {
      try {
        runQuiet("umount", [mountPoint])
      } catch (error) {
        log(`${error instanceof Error ? error.message.trim() : error}; detaching lazily`)
        runQuiet("umount", ["-l", mountPoint])
      }
      mounted = false
    }
    await fs.rm(root, { recursive: true, force: true })
  }
  try {
    await fs.mkdir(mountPoint)
    await fs.writeFile(image, "")
    await fs.truncate(image, 24 * 1024 ** 3)
    runQuiet("mkfs.xfs", ["-q", "-m", "reflink=1", image])
    runQuiet("mount", ["-o", "loop", image, mountPoint])
    mounted = true
  } catch (error) {
    await release()
    throw error
  }
  return { dir: mountPoint, describe: "a fresh XFS (reflink=1) on a loop device", release }
}

// ---------------------------------------------------------------------------------------------
// Running banger

const running = new Set<ChildProcess>()

interface CliRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  /** Epoch ms when the CLI was spawned (to compare with the daemon's and /proc's clocks). */
  readonly spawnedAt: number
  readonly wallMs: number
  /** Each stderr line with the ms since spawn at which it arrived. */
  readonly lines: ReadonlyArray<readonly [ms: number, line: string]>
}

const cli = (bin: string, args: ReadonlyArray<string>): Promise<CliRun> =>
  new Promise((resolve, reject) => {
    const spawnedAt = Date.now()
    const began = performance.now()
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    running.add(child)
    let stdout = ""
    let stderr = ""
    let partial = ""
    const lines: Array<readonly [number, string]> = []
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      const at = performance.now() - began
      stderr += chunk
      const parts = (partial + chunk).split("\n")
      partial = parts.pop() ?? ""
      for (const line of parts) lines.push([at, line])
    })
    child.on("error", reject)
    child.on("close", (code) => {
      running.delete(child)
      resolve({ code, stdout, stderr, spawnedAt, wallMs: performance.now() - began, lines })
    })
  })

const ok = async (bin: string, args: ReadonlyArray<string>) => {
  const result = await cli(bin, args)
  if (result.code !== 0) throw new Error(`banger ${args.join(" ")} exited ${result.code}:\n${result.stderr}`)
  return result
}

/**
 * Epoch ms at which a process started: /proc/<pid>/stat's start time counts clock ticks since boot,
 * on the same clock as /proc/uptime (btime is rounded to the second, and the wall clock drifts from it).
 */
const CLOCK_TICKS = 100
const processStartEpochMs = async (startTicks: string) => {
  const now = Date.now()
  const uptime = Number((await fs.readFile("/proc/uptime", "utf8")).split(" ")[0])
  return now - (uptime - Number(startTicks) / CLOCK_TICKS) * 1000
}

/** Live processes of ours whose command line names `needle` (the state dir): daemons and VMMs. */
const processesNaming = async (needle: string, match: (argv: ReadonlyArray<string>) => boolean) => {
  const found: Array<number> = []
  for (const name of await fs.readdir("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    const argv = await readCmdline(Number(name))
    if (argv.some((arg) => arg.includes(needle)) && match(argv)) found.push(Number(name))
  }
  return found
}

const terminate = async (pid: number) => {
  try {
    process.kill(pid, "SIGTERM")
  } catch {
    return
  }
  if (!(await gone(pid, 10_000))) {
    process.kill(pid, "SIGKILL")
    await gone(pid, 5_000)
  }
}

/** The daemon of this state dir, then (should a run have failed midway) QEMUs on its disks. */
const stopEverything = async (stateDir: string) => {
  const isDaemon = (argv: ReadonlyArray<string>) => argv.includes("daemon") && argv.includes("--state-dir")
  for (const pid of await processesNaming(stateDir, isDaemon)) await terminate(pid)
  const isQemu = (argv: ReadonlyArray<string>) => path.basename(argv[0] ?? "").startsWith("qemu-system")
  for (const pid of await processesNaming(path.join(stateDir, "vms"), isQemu)) await terminate(pid)
}

// ---------------------------------------------------------------------------------------------
// One create

const STAGES = ["work-disk", "configure", "boot", "ready"] as const

interface Sample {
  /** CLI spawn → the operation's start in the daemon (the CLI's own start, connect, begin). */
  readonly cliToOpMs: number
  /** Operation start → the work-disk stage (validate, resolve the image, inspect the kernel, choose). */
  readonly validateMs: number
  readonly workDiskMs: number
  readonly configureMs: number
  /** The boot stage → QEMU's process start (the VMM's spawn, as /proc dates it). */
  readonly spawnMs: number
  /** QEMU's process start → the ready stage (its QMP socket answering, the guest running). */
  readonly qmpMs: number
  /** CLI spawn → the ready stage: the VMM started and answering. */
  readonly vmmStartedMs: number
  /** Operation start (in the daemon) → the ready stage. */
  readonly daemonVmmStartedMs: number
  /** From the daemon's log line, ms since createVm began: the image resolved (validated, kernel inspected). */
  readonly dResolvedMs: number
  readonly dWorkDiskMs: number
  readonly dConfigureMs: number
  /** Configured → the VMM process spawned (its pid known). */
  readonly dSpawnMs: number
  /** = createVm began → the VMM process spawned: the daemon-side figure. */
  readonly dSpawnedMs: number
  /** The VMM spawned → its QMP socket answering, guest running. */
  readonly dAnsweringMs: number
  /** = CLI spawn → the VMM process spawned (operation begun + the daemon-side figure). */
  readonly cliSpawnedMs: number
  /** The ready stage → the CLI's exit: the guest's boot to its ready line, the row, the reply. */
  readonly guestMs: number
  readonly totalMs: number
  readonly deleteMs: number
}

interface CreatedVm {
  readonly pid: number
  readonly pidStartTime: string
}

interface OpRow {
  readonly kind: string
  readonly target: string
  readonly startedAt: string
}

const createOnce = async (
  bin: string,
  stateDir: string,
  name: string,
  diskSize: string,
  network: boolean
): Promise<Sample> => {
  const base = ["--state-dir", stateDir]
  spawnSync("sync")
  const run = await cli(bin, [
    ...base,
    "vm",
    "create",
    name,
    "--image",
    "debian",
    "--accel",
    "tcg",
    "--disk-size",
    diskSize,
    // Without --network the daemon runs in the host's namespace: no tap or nftables table there.
    ...(network ? [] : ["--no-network"]),
    "--json"
  ])
  if (run.code !== 0) throw new Error(`vm create ${name} exited ${run.code}:\n${run.stderr}`)
  const stageAt = (stage: (typeof STAGES)[number]) => {
    const found = run.lines.find(([, line]) => line.trim() === `banger: ${stageText[stage]}…`)
    if (found === undefined) throw new Error(`vm create ${name}: no "${stage}" line on stderr:\n${run.stderr}`)
    return found[0]
  }
  const at = Object.fromEntries(STAGES.map((stage) => [stage, stageAt(stage)])) as Record<
    (typeof STAGES)[number],
    number
  >
  const vm = JSON.parse(run.stdout) as CreatedVm
  const qemuStarted = (await processStartEpochMs(vm.pidStartTime)) - run.spawnedAt
  const ops = JSON.parse((await ok(bin, [...base, "op", "list", "--json"])).stdout) as Array<OpRow>
  const op = ops.find((row) => row.target === name)
  if (op === undefined) throw new Error(`no operation for ${name} in op list`)
  const opStarted = Date.parse(op.startedAt) - run.spawnedAt
  const timing = await daemonTiming(stateDir, name)
  const deleted = await ok(bin, [...base, "vm", "delete", name, "--force"])
  return {
    dResolvedMs: timing.resolved,
    dWorkDiskMs: timing.disk - timing.resolved,
    dConfigureMs: timing.configured - timing.disk,
    dSpawnMs: timing.spawned - timing.configured,
    dSpawnedMs: timing.spawned,
    dAnsweringMs: timing.answering - timing.spawned,
    cliSpawnedMs: opStarted + timing.spawned,
    cliToOpMs: opStarted,
    validateMs: at["work-disk"] - opStarted,
    workDiskMs: at.configure - at["work-disk"],
    configureMs: at.boot - at.configure,
    spawnMs: qemuStarted - at.boot,
    qmpMs: at.ready - qemuStarted,
    vmmStartedMs: at.ready,
    daemonVmmStartedMs: at.ready - opStarted,
    guestMs: run.wallMs - at.ready,
    totalMs: run.wallMs,
    deleteMs: deleted.wallMs
  }
}

/**
 * The daemon's own clock for one create (src/pipelines/vm/boot.ts logs it once the VMM runs): ms
 * since createVm began, which is within a millisecond of the operation's start.
 */
const daemonTiming = async (stateDir: string, name: string) => {
  const log = await fs.readFile(path.join(stateDir, "daemon.log"), "utf8")
  const number = "([\\d.]+)"
  const line = new RegExp(
    `vm ${name} create: VMM spawned at ${number} ms, answering at ${number} ms \\(image resolved at ${number} ms, work disk made at ${number} ms, configured at ${number} ms`
  ).exec(log)
  if (line === null) throw new Error(`no timing line for ${name} in ${stateDir}/daemon.log`)
  const [spawned, answering, resolved, disk, configured] = line.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number
  ]
  return { spawned, answering, resolved, disk, configured }
}

/** The CLI's own start, no daemon involved: node alone, and node loading banger's bundle. */
const cliStart = async (bin: string) => {
  const nodeAlone: Array<number> = []
  const version: Array<number> = []
  for (let i = 0; i < 7; i++) {
    let began = performance.now()
    runQuiet(process.execPath, ["-e", "0"])
    nodeAlone.push(performance.now() - began)
    began = performance.now()
    runQuiet(process.execPath, [bin, "--version"])
    version.push(performance.now() - began)
  }
  return { nodeMs: median(nodeAlone), versionMs: median(version) }
}

// ---------------------------------------------------------------------------------------------
// The work disk's parts, outside banger, on the same filesystem

interface DiskParts {
  readonly copyMs: number
  readonly e2fsckMs: number
  readonly resize2fsMs: number
  /** Free space the copy took (statfs before and after, synced): ~0 for a reflink. */
  readonly copyAllocatedBytes: number
}

const freeBytes = (dir: string) => {
  const [blocks, size] = runQuiet("stat", ["-f", "-c", "%f %S", dir]).trim().split(" ").map(Number)
  return blocks! * size!
}

/** What `createWorkDisk` runs (cp, e2fsck -fp, resize2fs), timed one by one; removed after. */
const diskParts = async (rootfs: string, dir: string, diskSize: string): Promise<DiskParts> => {
  const disk = path.join(dir, "bench-disk.ext4")
  try {
    spawnSync("sync")
    const before = freeBytes(dir)
    const copyMs = timed("cp", ["--reflink=auto", "--sparse=always", "--preserve=timestamps", rootfs, disk])
    spawnSync("sync")
    const allocated = before - freeBytes(dir)
    const e2fsckMs = timed("e2fsck", ["-fp", disk])
    const resize2fsMs = timed("resize2fs", [disk, diskSize])
    return { copyMs, e2fsckMs, resize2fsMs, copyAllocatedBytes: allocated }
  } finally {
    await fs.rm(disk, { force: true })
  }
}

// ---------------------------------------------------------------------------------------------
// Report

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const ms = (value: number) => (value >= 10_000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`)

const ROWS: ReadonlyArray<readonly [keyof Sample, string]> = [
  ["cliToOpMs", "CLI start → operation begun in the daemon"],
  ["dResolvedMs", "daemon: validate, resolve image, inspect kernel"],
  ["dWorkDiskMs", "daemon: work disk (+ the guest reads, alongside)"],
  ["dConfigureMs", "daemon: configure (plan, one debugfs write)"],
  ["dSpawnMs", "daemon: boot → VMM process spawned"],
  ["dSpawnedMs", "= daemon: create began → VMM spawned"],
  ["cliSpawnedMs", "= vm create (CLI) → VMM spawned"],
  ["dAnsweringMs", "daemon: VMM spawned → QMP answering"],
  ["vmmStartedMs", "vm create (CLI) → ready stage line (QMP answered)"],
  ["validateMs", "stage lines: operation begun → work-disk"],
  ["workDiskMs", "stage lines: work-disk → configure"],
  ["configureMs", "stage lines: configure → boot"],
  ["daemonVmmStartedMs", "stage lines: operation begun → ready stage"],
  ["guestMs", "VMM started → ready line, row, CLI exit"],
  ["totalMs", "= vm create → ready (CLI exit)"],
  ["deleteMs", "vm delete --force (not part of the above)"]
]

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const all = [header, ...rows]
  const widths = header.map((_, column) => Math.max(...all.map((row) => row[column]!.length)))
  return all.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ")).join("\n")
}

interface Context {
  readonly scenario: ScenarioName
  readonly scratch: Scratch
  readonly stateDir: string
  readonly samples: Array<Sample>
  image?: { readonly rootfs: string; readonly sizeBytes: number }
  reflink?: boolean
  /** With --network: the namespace its daemon runs in (made here, deleted at cleanup). */
  netns?: string
}

interface ScenarioResult {
  readonly scenario: ScenarioName
  readonly where: string
  readonly reflink: boolean
  readonly rootfsBytes: number
  readonly samples: ReadonlyArray<Sample>
  readonly diskParts: ReadonlyArray<DiskParts>
}

// ---------------------------------------------------------------------------------------------

/**
 * --network: the daemon that pulled (in the host's namespace, where the registry is) is stopped
 * and a new one serves the same state dir inside a namespace made for it, so the VMs' taps and
 * banger's nftables table never touch the host. Its log goes where an auto-started one's would.
 */
const moveDaemonIntoNetns = async (bin: string, context: Context) => {
  await stopEverything(context.stateDir)
  const netns = `banger-bench-${process.pid}-${context.scenario}`
  if (spawnSync("ip", ["netns", "add", netns]).status !== 0) throw new Error(`ip netns add ${netns} failed`)
  context.netns = netns
  spawnSync("ip", ["netns", "exec", netns, "ip", "link", "set", "lo", "up"])
  const logFd = await fs.open(path.join(context.stateDir, "daemon.log"), "a")
  const daemon = spawn(
    "ip",
    ["netns", "exec", netns, process.execPath, bin, "--state-dir", context.stateDir, "daemon"],
    { detached: true, stdio: ["ignore", logFd.fd, logFd.fd] }
  )
  daemon.unref()
  await logFd.close()
  const socket = path.join(context.stateDir, "banger.sock")
  const deadline = Date.now() + 30_000
  while (!(await answers(socket))) {
    if (Date.now() > deadline)
      throw new Error(`the daemon in ${netns} did not start (see ${context.stateDir}/daemon.log)`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  log(`${context.scenario}: daemon now in network namespace ${netns}`)
}

const main = async () => {
  const options = parseArgs(process.argv.slice(2))
  if (process.getuid?.() !== 0) throw new Error("run as root: the XFS scratch filesystem is a loop mount")
  for (const tool of ["mkfs.xfs", "qemu-system-x86_64", "e2fsck", "resize2fs", "docker-registry"]) {
    if (spawnSync("sh", ["-c", `command -v "$0"`, tool]).status !== 0) throw new Error(`missing ${tool}`)
  }
  const bin = path.join(repoRoot, "bin", "banger")
  if (options.build) {
    log("npm run build")
    const built = spawnSync("npm", ["run", "--silent", "build"], { cwd: repoRoot, stdio: ["ignore", 2, 2] })
    if (built.status !== 0) throw new Error("npm run build failed")
  }
  const kernel = await findCloudKernel()

  let registry: TestRegistry | undefined
  const contexts: Array<Context> = []
  const work = await fs.mkdtemp(path.join(os.tmpdir(), "banger-vmbench-image-"))
  const cleanup = async () => {
    for (const child of running) child.kill("SIGKILL")
    for (const context of contexts.splice(0)) {
      await stopEverything(context.stateDir)
      if (context.netns !== undefined) spawnSync("ip", ["netns", "del", context.netns])
      await context.scratch.release()
    }
    await registry?.stop()
    registry = undefined
    await fs.rm(work, { recursive: true, force: true })
  }
  cleanUpOnSignals(cleanup)

  try {
    const rootfs = await debianRootfs()
    const layer = await layerFromDirectory(rootfs, { output: path.join(work, "debian.tar.gz"), level: 1 })
    registry = await startRegistry()
    await pushImage(registry, "debian-systemd", "1", { layers: [layer] })
    log(`pushed ${registry.host}/debian-systemd:1; kernel ${kernel.kernel}`)

    // Every scenario is set up first (its own state dir and daemon), then the runs alternate
    // between them: other work on the machine moves single runs by 2x, and it should hit each alike.
    for (const scenario of options.scenarios) {
      const scratch = scenario === "xfs" ? await xfsScratch() : await diskScratch()
      const context: Context = { scenario, scratch, stateDir: path.join(scratch.dir, "state"), samples: [] }
      contexts.push(context)
      log(`${scenario}: state dir on ${scratch.describe}`)
      const pulled = await ok(bin, [
        "--state-dir",
        context.stateDir,
        "image",
        "pull",
        `${registry.host}/debian-systemd:1`,
        "--name",
        "debian",
        "--kernel",
        kernel.kernel,
        "--initrd",
        kernel.initrd,
        "--json"
      ])
      const image = JSON.parse(pulled.stdout) as { rootfs: string; sizeBytes: number }
      context.image = image
      const probe = spawnSync("cp", ["--reflink=always", image.rootfs, path.join(scratch.dir, "probe")])
      await fs.rm(path.join(scratch.dir, "probe"), { force: true })
      context.reflink = probe.status === 0
      log(
        `${scenario}: image pulled (${(image.sizeBytes / 2 ** 20).toFixed(0)} MiB rootfs), reflink ${context.reflink}`
      )
      if (options.network) await moveDaemonIntoNetns(bin, context)
    }
    const loadBefore = os.loadavg()
    for (let run = 0; run < options.runs; run++) {
      const order = run % 2 === 0 ? contexts : [...contexts].reverse()
      for (const context of order) {
        const sample = await createOnce(bin, context.stateDir, `bench-${run}`, options.diskSize, options.network)
        context.samples.push(sample)
        log(
          `${context.scenario} run ${run + 1}: VMM spawned ${ms(sample.cliSpawnedMs)} from the CLI, ${ms(sample.dSpawnedMs)} in the daemon (work disk ${ms(sample.dWorkDiskMs)}, configure ${ms(sample.dConfigureMs)}, spawn ${ms(sample.dSpawnMs)}), ready ${ms(sample.totalMs)}`
        )
      }
    }
    const loadAfter = os.loadavg()
    const results: Array<ScenarioResult> = []
    for (const context of contexts) {
      const parts: Array<DiskParts> = []
      for (let i = 0; i < 3; i++)
        parts.push(await diskParts(context.image!.rootfs, context.scratch.dir, options.diskSize))
      results.push({
        scenario: context.scenario,
        where: context.scratch.describe,
        reflink: context.reflink ?? false,
        rootfsBytes: context.image!.sizeBytes,
        samples: context.samples,
        diskParts: parts
      })
    }

    const started = await cliStart(bin)
    const header = ["median of runs", ...results.map((r) => `${r.scenario} (${r.reflink ? "reflink" : "copy"})`)]
    const rows = ROWS.map(([key, label]) => [label, ...results.map((r) => ms(median(r.samples.map((s) => s[key]))))])
    const diskHeader = ["work disk's parts, outside banger (median of 3)", ...results.map((r) => r.scenario)]
    const diskRows: Array<Array<string>> = [
      ["cp --reflink=auto --sparse=always", ...results.map((r) => ms(median(r.diskParts.map((p) => p.copyMs))))],
      ["e2fsck -fp", ...results.map((r) => ms(median(r.diskParts.map((p) => p.e2fsckMs))))],
      [`resize2fs to ${options.diskSize}`, ...results.map((r) => ms(median(r.diskParts.map((p) => p.resize2fsMs))))],
      [
        "free space the copy took",
        ...results.map((r) => `${(median(r.diskParts.map((p) => p.copyAllocatedBytes)) / 2 ** 20).toFixed(0)} MiB`)
      ]
    ]
    console.log(
      [
        "",
        `vm create of the Debian (systemd) image, QEMU TCG, ${options.runs} interleaved run(s) each, --disk-size ${options.diskSize}, ${options.network ? "networked (tap, nftables, sshd waited for; daemon in a netns)" : "--no-network"}; load average ${loadBefore[0]!.toFixed(1)} before, ${loadAfter[0]!.toFixed(1)} after`,
        ...results.map((r) => `  ${r.scenario}: ${r.where}`),
        "",
        table(header, rows),
        "",
        table(diskHeader, diskRows),
        "",
        `the CLI's own start (median of 7): node -e 0 ${ms(started.nodeMs)}, bin/banger --version ${ms(started.versionMs)}`,
        ""
      ].join("\n")
    )
    const date = new Date().toISOString()
    const out = options.out ?? path.join(repoRoot, ".bench", "results", `vm-${date.replace(/[:.]/g, "-")}.json`)
    await fs.mkdir(path.dirname(out), { recursive: true })
    await fs.writeFile(
      out,
      `${JSON.stringify({ date, runs: options.runs, cliStart: started, diskSize: options.diskSize, host: { cpus: os.cpus().length, node: process.version }, load: { before: loadBefore, after: loadAfter }, results }, null, 2)}\n`
    )
    log(`results: ${path.relative(process.cwd(), out)}`)
  } finally {
    await cleanup()
  }
}

main().catch((error) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 1
})
