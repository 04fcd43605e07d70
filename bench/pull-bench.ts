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
 * See bench/README.md.
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs/promises"
import * as http from "node:http"
import type * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { debianRootfs, debianRootfsInfo, repoRoot } from "../test/support/debian-rootfs.js"
import { pushImage, startRegistry, type TestRegistry } from "../test/support/registry.js"
import { type LayerFile, layerFromDirectory, splitDebianImage } from "../test/support/rootfs-layers.js"
import { gone, readCmdline } from "./proc.js"

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
}

const usage =
  "usage: npm run bench -- [--runs N] [--banger-only] [--fs loop|ram|tmp] [--no-build] [--banger PATH] [--bandwidth MBPS] [--out FILE] [--cpu-prof DIR] [--mem-trace DIR] [--kernel K] [--initrd I] [--poll-ms MS]"

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
    pollMs: 100
  }
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!
    const value = () => {
      const next = argv[++index]
      if (next === undefined) throw new Error(`${arg} needs a value\n${usage}`)
      return next
    }
    switch (arg) {
      case "--runs":
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
      case "-h":
      case "--help":
        console.log(usage)
        process.exit(0)
        break
      default:
        throw new Error(`unknown argument ${arg}\n${usage}`)
    }
  }
  return options
}

// ---------------------------------------------------------------------------------------------
// Preflight

const TOOLS: ReadonlyArray<readonly [tool: string, pkg: string, toolchainOnly: boolean]> = [
  ["docker-registry", "docker-registry", false],
  ["mkfs.ext4", "e2fsprogs", false],
  ["debugfs", "e2fsprogs", false],
  ["e2fsck", "e2fsprogs", false],
  ["skopeo", "skopeo", true],
  ["umoci", "umoci", true]
]

const onPath = (tool: string) => spawnSync("sh", ["-c", `command -v "$0"`, tool]).status === 0

const preflight = (options: Options) => {
  const missing = TOOLS.filter(([tool, , toolchainOnly]) => !(toolchainOnly && options.bangerOnly) && !onPath(tool))
  if (missing.length > 0) {
    const packages = [...new Set(missing.map(([, pkg]) => pkg))]
    throw new Error(
      `missing ${missing.map(([tool]) => tool).join(", ")}; on Debian: apt-get install ${packages.join(" ")}`
    )
  }
}

/** The newest /boot/vmlinuz-* and its initrd, unless given. */
const findKernel = async (options: Options) => {
  if (options.kernel) return { kernel: options.kernel, initrd: options.initrd }
  const names = (await fs.readdir("/boot").catch(() => [] as Array<string>)).filter((n) => n.startsWith("vmlinuz-"))
  const newest = names.sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).at(-1)
  if (newest === undefined) throw new Error("no /boot/vmlinuz-*: pass --kernel (and --initrd)")
  const initrd = path.join("/boot", `initrd.img-${newest.slice("vmlinuz-".length)}`)
  const hasInitrd = await fs.access(initrd).then(
    () => true,
    () => false
  )
  return { kernel: path.join("/boot", newest), initrd: options.initrd ?? (hasInitrd ? initrd : undefined) }
}

// ---------------------------------------------------------------------------------------------
// A slower registry

/**
 * A loopback proxy in front of the registry that passes responses on at `mbps` MB/s, shared by all
 * connections: a registry across a real network, where the download is the slow part.
 */
const throttlingProxy = async (target: string, mbps: number) => {
  const bytesPerMs = (mbps * 1e6) / 1000
  let free = 0
  const server = http.createServer((request, response) => {
    const upstream = http.request(
      `http://${target}${request.url}`,
      { method: request.method, headers: { ...request.headers, host: target } },
      async (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers)
        for await (const chunk of answer as AsyncIterable<Buffer>) {
          const now = performance.now()
          free = Math.max(free, now) + chunk.length / bytesPerMs
          if (free > now) await new Promise((resolve) => setTimeout(resolve, free - now))
          if (!response.write(chunk)) await new Promise((resolve) => response.once("drain", resolve))
        }
        response.end()
      }
    )
    upstream.on("error", () => response.destroy())
    request.pipe(upstream)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as net.AddressInfo
  return {
    host: `127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

// ---------------------------------------------------------------------------------------------
// Where both sides write

interface Scratch {
  readonly dir: string
  readonly kind: "loop" | "ram" | "tmp"
  readonly release: () => Promise<void>
}

const runQuiet = (command: string, args: ReadonlyArray<string>) => {
  const result = spawnSync(command, args, { encoding: "utf8" })
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")}: ${result.stderr || result.error}`)
}

/**
 * A fresh ext4 (with its default journal) on a loop device, or a directory in the temp dir. The
 * loop device is the default for root: this machine's root filesystem has no journal, and ext4
 * without one passes over every inode freed in the last minute (dirty: six) on each create
 * (`recently_deleted`), so once a pull has removed its tree, the next tree's 10k creates cost
 * seconds of system time. That is a property of this host, not of either side being measured.
 */
const scratchDir = async (wanted: Options["fs"]): Promise<Scratch> => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "banger-bench-"))
  const tmp: Scratch = { dir: root, kind: "tmp", release: () => fs.rm(root, { recursive: true, force: true }) }
  if (wanted === "tmp" || (wanted === undefined && process.getuid?.() !== 0)) return tmp
  // "ram": the loop device's file in /dev/shm, so that no step waits for the disk (deletes give
  // the memory back: mounted with discard).
  const image =
    wanted === "ram" ? path.join("/dev/shm", `${path.basename(root)}.ext4`) : path.join(root, "scratch.ext4")
  const mountPoint = path.join(root, "mnt")
  try {
    await fs.mkdir(mountPoint)
    await fs.writeFile(image, "")
    await fs.truncate(image, 16 * 1024 ** 3)
    runQuiet("mkfs.ext4", ["-q", "-F", image])
    runQuiet("mount", ["-o", wanted === "ram" ? "loop,discard" : "loop", image, mountPoint])
  } catch (error) {
    await fs.rm(image, { force: true })
    await tmp.release()
    if (wanted === "loop") throw error
    log(
      `no loop-mounted scratch filesystem (${error instanceof Error ? error.message.trim() : error}); using ${os.tmpdir()}`
    )
    return scratchDir("tmp")
  }
  return {
    dir: mountPoint,
    kind: wanted === "ram" ? "ram" : "loop",
    release: async () => {
      // A loop device set up by mount is detached by umount; lazily if something still holds it.
      try {
        runQuiet("umount", [mountPoint])
      } catch (error) {
        log(`${error instanceof Error ? error.message.trim() : error}; detaching lazily`)
        runQuiet("umount", ["-l", mountPoint])
      }
      await fs.rm(image, { force: true })
      await fs.rm(root, { recursive: true, force: true })
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The image

/** Directories of real host files for the extra layer, taken whole, in order, until the image reaches TARGET. */
const EXTRA_CANDIDATES = [
  "usr/lib/python3.11",
  "usr/share/perl",
  "usr/lib/x86_64-linux-gnu/perl",
  "usr/share/man",
  "usr/share/locale"
]
const TARGET_BYTES = 200 * 1024 * 1024
const GZIP_LEVEL = 6
const CACHE_VERSION = 1

interface BenchLayer extends LayerFile {
  readonly name: string
}

interface LayerCache {
  readonly version: number
  readonly debianBuiltAt: string
  readonly extraDirs: ReadonlyArray<string>
  readonly level: number
  readonly layers: ReadonlyArray<BenchLayer>
}

const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`)

/** Apparent bytes of regular files below `dir` (hard links counted once). */
const treeBytes = async (dir: string): Promise<number> => {
  const seen = new Set<string>()
  let total = 0
  const walk = async (current: string) => {
    for (const entry of await fs.readdir(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name)
      if (entry.isDirectory()) await walk(full)
      else if (entry.isFile()) {
        const stats = await fs.lstat(full)
        const key = `${stats.dev}:${stats.ino}`
        if (seen.has(key)) continue
        seen.add(key)
        total += stats.size
      }
    }
  }
  await walk(dir)
  return total
}

const chooseExtraDirs = async (debianBytes: number) => {
  const chosen: Array<string> = []
  let total = debianBytes
  for (const dir of EXTRA_CANDIDATES) {
    if (total >= TARGET_BYTES) break
    const stats = await fs.lstat(path.join("/", dir)).catch(() => undefined)
    if (!stats?.isDirectory()) continue
    chosen.push(dir)
    total += await treeBytes(path.join("/", dir))
  }
  return chosen
}

const fileSize = (file: string) =>
  fs.stat(file).then(
    (stats) => stats.size,
    () => -1
  )

/** The bench image's layers, from `.bench/layers/` when a complete build for the same inputs is there. */
const benchLayers = async (): Promise<ReadonlyArray<BenchLayer>> => {
  const dir = path.join(repoRoot, ".bench", "layers")
  const metaPath = path.join(dir, "layers.json")
  const rootfs = await debianRootfs({
    onBuilt: (info) => log(`debootstrap took ${(info.durationMs / 1000).toFixed(0)} s`)
  })
  const debian = await debianRootfsInfo()
  const cached = JSON.parse(await fs.readFile(metaPath, "utf8").catch(() => "null")) as LayerCache | null
  if (
    cached?.version === CACHE_VERSION &&
    cached.debianBuiltAt === debian?.builtAt &&
    cached.level === GZIP_LEVEL &&
    (await Promise.all(cached.layers.map(async (layer) => (await fileSize(layer.path)) === layer.size))).every(Boolean)
  ) {
    return cached.layers
  }
  log("building the bench image layers (once; cached in .bench/layers)")
  const started = performance.now()
  await fs.rm(dir, { recursive: true, force: true })
  await fs.mkdir(dir, { recursive: true })
  const split = await splitDebianImage(rootfs, dir, { level: GZIP_LEVEL })
  const debianBytes = split.layers.reduce((sum, layer) => sum + layer.uncompressedSize, 0)
  const extraDirs = await chooseExtraDirs(debianBytes)
  const extra = await layerFromDirectory("/", {
    output: path.join(dir, "extra.tar.gz"),
    filter: (p) => extraDirs.some((extraDir) => under(p, extraDir) || under(extraDir, p)),
    level: GZIP_LEVEL
  })
  const [base, docs, top] = split.layers
  // The host files go between the Debian layers and the small top layer, as an app layer would.
  const layers: Array<BenchLayer> = [base!, docs!, { ...extra, name: "extra" }, top!]
  const meta: LayerCache = {
    version: CACHE_VERSION,
    debianBuiltAt: debian?.builtAt ?? "",
    extraDirs,
    level: GZIP_LEVEL,
    layers
  }
  await fs.writeFile(metaPath, `${JSON.stringify(meta, null, 2)}\n`)
  log(`built in ${((performance.now() - started) / 1000).toFixed(0)} s (extra layer: ${extraDirs.join(", ")})`)
  return layers
}

// ---------------------------------------------------------------------------------------------
// Running and watching processes

interface ProcessPeak {
  readonly name: string
  /** VmHWM in bytes. */
  readonly peakRss: number
  /** First and last time the poller saw it, ms after the watched command started. */
  readonly firstSeen: number
  readonly lastSeen: number
}

interface Watched {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly wallMs: number
  readonly stdout: string
  readonly stderr: string
  /** The command's own process: VmHWM, user+system CPU seconds at the last poll. */
  readonly peakRss: number
  readonly cpuSeconds: number
  /** Descendants (and extra roots) by pid, in order of appearance; the daemon is not among them. */
  readonly children: ReadonlyArray<ProcessPeak>
  /** Lines of stderr with the ms (after start) they arrived. */
  readonly stderrLines: ReadonlyArray<readonly [ms: number, line: string]>
  /** The command's own VmRSS at each poll. */
  readonly rssSamples: ReadonlyArray<readonly [ms: number, rss: number]>
  /** The banger daemon the command started or talked to, if one was seen. */
  readonly daemon: DaemonWatch | undefined
}

interface DaemonWatch {
  readonly pid: number
  /** VmHWM: the daemon's peak over its whole life so far. */
  readonly peakRss: number
  /** CPU seconds it used while the command ran (from its first poll to its last). */
  readonly cpuSeconds: number
  readonly rssSamples: ReadonlyArray<readonly [ms: number, rss: number]>
}

const running = new Set<ChildProcess>()
/**
 * Between two reads of the watched processes' /proc files (`--poll-ms`). Peak RSS is the kernel's
 * own high-water mark (VmHWM) and CPU the kernel's count, exact at any interval; only the RSS by
 * stage and the spotting of short-lived children get coarser. Reading every thread's children of
 * two node processes every 20 ms took enough of this two-core machine to slow a cold banger pull
 * by 0.2-0.35 s (2.58 / 2.79 s at 20 ms against 2.36 / 2.42 s at 200 ms, `--banger-only --fs ram`).
 */
let pollMs = 100
const CLOCK_TICKS = 100

const readStatus = async (pid: number) => {
  const text = await fs.readFile(`/proc/${pid}/status`, "utf8").catch(() => undefined)
  if (text === undefined) return undefined
  const name = /^Name:\s*(.*)$/m.exec(text)?.[1] ?? "?"
  const hwm = Number(/^VmHWM:\s*(\d+) kB$/m.exec(text)?.[1] ?? 0) * 1024
  const rss = Number(/^VmRSS:\s*(\d+) kB$/m.exec(text)?.[1] ?? 0) * 1024
  return { name, hwm, rss }
}

const readCpu = async (pid: number) => {
  const text = await fs.readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined)
  if (text === undefined) return undefined
  // Fields after the parenthesised comm: state is field 3, utime 14, stime 15.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

const childrenOf = async (pid: number): Promise<Array<number>> => {
  const tasks = await fs.readdir(`/proc/${pid}/task`).catch(() => [] as Array<string>)
  const found: Array<number> = []
  for (const task of tasks) {
    const text = await fs.readFile(`/proc/${pid}/task/${task}/children`, "utf8").catch(() => "")
    for (const word of text.split(" ")) if (word.trim() !== "") found.push(Number(word))
  }
  return found
}

/** `banger --state-dir <stateDir> daemon ...` (a node process, not a child it is about to exec). */
const isDaemonOf = (stateDir: string, name: string, cmdline: ReadonlyArray<string>) => {
  const at = cmdline.indexOf("--state-dir")
  return name === "node" && at >= 0 && cmdline[at + 1] === stateDir && cmdline.includes("daemon")
}

interface WatchOptions {
  /** Recognise the banger daemon of this state dir among the descendants (or `daemonPid`). */
  readonly stateDir?: string | undefined
  /** A daemon already running, not a descendant of the command. */
  readonly daemonPid?: number | undefined
  /** Added to this process's environment. */
  readonly env?: Readonly<Record<string, string>> | undefined
}

interface Tracked {
  name: string
  peakRss: number
  firstSeen: number
  lastSeen: number
  daemon: boolean
  cpuFirst: number | undefined
  cpuLast: number | undefined
  readonly rssSamples: Array<readonly [number, number]>
}

/** Runs a command to completion while polling its, its descendants' and its daemon's memory. */
const watch = (command: string, args: ReadonlyArray<string>, options: WatchOptions = {}): Promise<Watched> =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...options.env } })
    running.add(child)
    const stdout: Array<Buffer> = []
    const stderrLines: Array<readonly [number, string]> = []
    let stderrTail = ""
    let partial = ""
    child.stdout!.on("data", (chunk: Buffer) => stdout.push(chunk))
    child.stderr!.on("data", (chunk: Buffer) => {
      const now = performance.now() - started
      const text = chunk.toString("utf8")
      stderrTail = (stderrTail + text).slice(-16_000)
      const lines = (partial + text).split("\n")
      partial = lines.pop()!
      for (const line of lines) stderrLines.push([now, line])
    })
    let peakRss = 0
    let cpuSeconds = 0
    const rssSamples: Array<readonly [number, number]> = []
    const tracked = new Map<number, Tracked>()
    const track = async (pid: number, now: number) => {
      const info = await readStatus(pid)
      if (info === undefined) return false
      let known = tracked.get(pid)
      const daemon = async () =>
        pid === options.daemonPid ||
        (options.stateDir !== undefined && isDaemonOf(options.stateDir, info.name, await readCmdline(pid)))
      // A pid that exec'd (sh -c 'exec debugfs', or node about to exec mkfs) starts a new record;
      // so does the CLI's fork once it is the daemon (node either way: its command line tells).
      if (
        known === undefined ||
        known.name !== info.name ||
        (!known.daemon && info.name === "node" && (await daemon()))
      ) {
        known = {
          name: info.name,
          peakRss: 0,
          firstSeen: now,
          lastSeen: now,
          daemon: await daemon(),
          cpuFirst: undefined,
          cpuLast: undefined,
          rssSamples: []
        }
        tracked.set(pid, known)
      }
      known.peakRss = Math.max(known.peakRss, info.hwm)
      known.lastSeen = now
      if (known.daemon) {
        known.rssSamples.push([now, info.rss])
        const cpu = await readCpu(pid)
        known.cpuFirst ??= cpu
        known.cpuLast = cpu ?? known.cpuLast
      }
      return true
    }
    let polling = true
    const poll = async () => {
      const pid = child.pid!
      while (polling) {
        const now = performance.now() - started
        const status = await readStatus(pid)
        if (status) {
          peakRss = Math.max(peakRss, status.hwm)
          rssSamples.push([now, status.rss])
        }
        cpuSeconds = (await readCpu(pid)) ?? cpuSeconds
        const queue = await childrenOf(pid)
        if (options.daemonPid !== undefined) queue.push(options.daemonPid)
        while (queue.length > 0) {
          const next = queue.shift()!
          if (await track(next, now)) queue.push(...(await childrenOf(next)))
        }
        await new Promise((r) => setTimeout(r, pollMs))
      }
    }
    const poller = poll()
    child.on("error", (error) => {
      polling = false
      running.delete(child)
      reject(error)
    })
    child.on("close", async (code, signal) => {
      const wallMs = performance.now() - started
      polling = false
      running.delete(child)
      await poller
      if (partial !== "") stderrLines.push([wallMs, partial])
      const daemonEntry = [...tracked.entries()].find(([, record]) => record.daemon)
      // The daemon outlives the command: its high-water mark and CPU count, read once more now, are
      // exact whatever the polling interval.
      if (daemonEntry) {
        const [pid, record] = daemonEntry
        const info = await readStatus(pid)
        if (info) record.peakRss = Math.max(record.peakRss, info.hwm)
        record.cpuLast = (await readCpu(pid)) ?? record.cpuLast
      }
      const daemon = daemonEntry && {
        pid: daemonEntry[0],
        peakRss: daemonEntry[1].peakRss,
        cpuSeconds:
          (daemonEntry[1].cpuLast ?? 0) -
          (pidKnownBefore(options, daemonEntry[0]) ? (daemonEntry[1].cpuFirst ?? 0) : 0),
        rssSamples: daemonEntry[1].rssSamples
      }
      resolve({
        code,
        signal,
        wallMs,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: stderrTail,
        peakRss,
        cpuSeconds,
        children: [...tracked.values()]
          .filter((record) => !record.daemon)
          .map(({ name, peakRss, firstSeen, lastSeen }) => ({ name, peakRss, firstSeen, lastSeen })),
        stderrLines,
        rssSamples,
        daemon
      })
    })
  })

/** A daemon started during the command counts all its CPU; one already running only what it used meanwhile. */
const pidKnownBefore = (options: WatchOptions, pid: number) => options.daemonPid === pid

const check = (what: string, result: Watched) => {
  if (result.code !== 0) {
    throw new Error(`${what} failed (${result.signal ?? result.code}):\n${result.stderr.slice(-4000)}`)
  }
  return result
}

// ---------------------------------------------------------------------------------------------
// The two sides

/** Stage names the CLI prints on stderr when it is not a terminal. */
const STAGES = ["resolve", "fetch", "flatten", "size", "mkfs", "stage-boot", "publish"]

interface Sample {
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
  const marks = result.stderrLines.filter(([, line]) => STAGES.includes(line.trim()))
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

interface BangerContext {
  readonly bin: string
  readonly ref: string
  readonly stateDir: string
  readonly kernel: string
  readonly initrd?: string
  /** The daemon the first pull started (the CLI starts one per state dir when none answers). */
  daemonPid?: number | undefined
}

interface Tracing {
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

const runBanger = async (context: BangerContext, name: string, tracing: Tracing) => {
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
  return { sample, sizeBytes: image.sizeBytes }
}

/** Daemons serving this state dir (the bench's own: the state dir is in its work dir). */
const daemonsOf = async (stateDir: string) => {
  const found: Array<number> = []
  for (const name of await fs.readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue
    const pid = Number(name)
    const status = await readStatus(pid)
    if (status !== undefined && isDaemonOf(stateDir, status.name, await readCmdline(pid))) found.push(pid)
  }
  return found
}

/** SIGTERM (then SIGKILL) for the daemon our pulls started, checked to still be that daemon. */
const stopDaemon = async (context: BangerContext) => {
  context.daemonPid = undefined
  for (const pid of await daemonsOf(context.stateDir)) {
    process.kill(pid, "SIGTERM")
    if (!(await gone(pid, 10_000))) {
      process.kill(pid, "SIGKILL")
      await gone(pid, 5_000)
    }
  }
}

const runToolchain = async (
  context: { readonly ref: string; readonly ociDir: string; readonly workDir: string },
  label: string,
  sizeBytes: number
) => {
  const bundle = path.join(context.workDir, `bundle-${label}`)
  const image = path.join(context.workDir, `toolchain-${label}.ext4`)
  const rootless = process.getuid?.() !== 0
  const steps: Array<readonly [string, string, ReadonlyArray<string>]> = [
    [
      "skopeo",
      "skopeo",
      ["copy", "--quiet", "--src-tls-verify=false", `docker://${context.ref}`, `oci:${context.ociDir}:1`]
    ],
    ["umoci", "umoci", ["unpack", ...(rootless ? ["--rootless"] : []), "--image", `${context.ociDir}:1`, bundle]],
    ["mkfs", "mkfs.ext4", ["-q", "-F", "-d", path.join(bundle, "rootfs"), image, `${Math.floor(sizeBytes / 1024)}k`]]
  ]
  const parts: Record<string, number> = {}
  const children: Array<ProcessPeak> = []
  let wallMs = 0
  let peakRss = 0
  for (const [part, command, args] of steps) {
    const result = check(`${command} (${label})`, await watch(command, args))
    parts[part] = result.wallMs
    wallMs += result.wallMs
    peakRss = Math.max(peakRss, result.peakRss)
    children.push({ name: command, peakRss: result.peakRss, firstSeen: 0, lastSeen: result.wallMs }, ...result.children)
  }
  const sample: Sample = { wallMs, parts, peakRss, children }
  return sample
}

// ---------------------------------------------------------------------------------------------
// Statistics and output

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const MiB = 1024 * 1024
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`
const mib = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`

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

const summarize = (samples: ReadonlyArray<Sample>) => ({
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

const log = (message: string) => process.stderr.write(`[bench] ${message}\n`)

const formatParts = (parts: Readonly<Record<string, number>>) =>
  Object.entries(parts)
    .map(([name, ms]) => `${name} ${(ms / 1000).toFixed(2)}`)
    .join(", ")

// ---------------------------------------------------------------------------------------------
// Main

const main = async () => {
  const options = parseArgs(process.argv.slice(2))
  pollMs = options.pollMs
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
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: cleaning up`)
    void cleanup().finally(() => process.exit(130))
  }
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)

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
        const sample = await runToolchain(toolchain, "cold", imageSize)
        samples.toolchainCold.push(sample)
        log(`run ${run + 1} toolchain cold  ${seconds(sample.wallMs)}  (${formatParts(sample.parts)})`)
      }
      const toolchainWarm = async () => {
        const sample = await runToolchain(toolchain, "warm", imageSize)
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
