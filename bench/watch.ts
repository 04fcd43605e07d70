/** Running a command while polling its, its descendants' and its banger daemon's memory and CPU from /proc. */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import { readCmdline } from "./proc.js"

// ---------------------------------------------------------------------------------------------
// Running and watching processes

export interface ProcessPeak {
  readonly name: string
  /** VmHWM in bytes. */
  readonly peakRss: number
  /** First and last time the poller saw it, ms after the watched command started. */
  readonly firstSeen: number
  readonly lastSeen: number
}

export interface Watched {
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

export interface DaemonWatch {
  readonly pid: number
  /** VmHWM: the daemon's peak over its whole life so far. */
  readonly peakRss: number
  /** CPU seconds it used while the command ran (from its first poll to its last). */
  readonly cpuSeconds: number
  readonly rssSamples: ReadonlyArray<readonly [ms: number, rss: number]>
}

export const running = new Set<ChildProcess>()
/**
 * Between two reads of the watched processes' /proc files (`--poll-ms`). Peak RSS is the kernel's
 * own high-water mark (VmHWM) and CPU the kernel's count, exact at any interval; only the RSS by
 * stage and the spotting of short-lived children get coarser. Reading every thread's children of
 * two node processes every 20 ms took enough of this two-core machine to slow a cold banger pull
 * by 0.2-0.35 s (2.58 / 2.79 s at 20 ms against 2.36 / 2.42 s at 200 ms, `--banger-only --fs ram`).
 */
let pollMs = 100
export const setPollMs = (ms: number) => {
  pollMs = ms
}
const CLOCK_TICKS = 100

export const readStatus = async (pid: number) => {
  const text = await fs.readFile(`/proc/${pid}/status`, "utf8").catch(() => undefined)
  if (text === undefined) return undefined
  const name = /^Name:\s*(.*)$/m.exec(text)?.[1] ?? "?"
  const hwm = Number(/^VmHWM:\s*(\d+) kB$/m.exec(text)?.[1] ?? 0) * 1024
  const rss = Number(/^VmRSS:\s*(\d+) kB$/m.exec(text)?.[1] ?? 0) * 1024
  return { name, hwm, rss }
}

export const readCpu = async (pid: number) => {
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
export const isDaemonOf = (stateDir: string, name: string, cmdline: ReadonlyArray<string>) => {
  const at = cmdline.indexOf("--state-dir")
  return name === "node" && at >= 0 && cmdline[at + 1] === stateDir && cmdline.includes("daemon")
}

export interface WatchOptions {
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
export const watch = (command: string, args: ReadonlyArray<string>, options: WatchOptions = {}): Promise<Watched> =>
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

export const check = (what: string, result: Watched) => {
  if (result.code !== 0) {
    throw new Error(`${what} failed (${result.signal ?? result.code}):\n${result.stderr.slice(-4000)}`)
  }
  return result
}

/** Daemons serving this state dir (the bench's own: the state dir is in its work dir). */
export const daemonsOf = async (stateDir: string) => {
  const found: Array<number> = []
  for (const name of await fs.readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue
    const pid = Number(name)
    const status = await readStatus(pid)
    if (status !== undefined && isDaemonOf(stateDir, status.name, await readCmdline(pid))) found.push(pid)
  }
  return found
}
