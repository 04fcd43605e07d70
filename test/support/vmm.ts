/** Helpers for Vmm tests: a VM's spec in a scratch dir, the processes that name it, Firecracker's request log. */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import type { VmLaunchSpec } from "../../src/domain/vmm.js"

export const FIRECRACKER_DOUBLE = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  "firecracker-double",
  "firecracker.mjs"
)

/** Pids of live processes whose command line mentions `needle` (a VM's run dir): what a test must not leave behind. */
export const processesMentioning = (needle: string): Array<number> => {
  const found: Array<number> = []
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8")
      const state = fs.readFileSync(`/proc/${entry}/stat`, "latin1")
      if (state.slice(state.lastIndexOf(")") + 2).startsWith("Z")) continue
      if (cmdline.includes(needle)) found.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return found
}

/** Whether `pid` runs (a zombie, dead but not yet reaped by its parent, does not). */
export const isRunning = (pid: number): boolean => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1")
    return !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")
  } catch {
    return false
  }
}

/** A VM spec whose run dir and console log are fresh under `root`. */
export const makeSpec = (root: string, name: string, overrides: Partial<VmLaunchSpec> = {}): VmLaunchSpec => {
  const runDir = path.join(root, name)
  fs.mkdirSync(runDir, { recursive: true })
  return {
    vmId: name,
    backend: "firecracker",
    accel: "tcg",
    cpus: 1,
    memoryMib: 128,
    kernel: "/bin/true",
    kernelFormat: "elf",
    bootArgs: "console=ttyS0 reboot=k panic=1",
    rootDisk: path.join(runDir, "disk.img"),
    runDir,
    consoleLog: path.join(runDir, "console.log"),
    ...overrides
  }
}

/** A sparse raw disk of `mib` MiB. */
export const makeDisk = (file: string, mib = 64) => {
  fs.writeFileSync(file, "")
  fs.truncateSync(file, mib * 1024 * 1024)
}

export interface LoggedRequest {
  readonly method: string
  readonly path: string
  readonly body: unknown
}

/**
 * The API requests Firecracker logged (at its default Info level, to stdout: the console log), in
 * order: `The API server received a Put request on "/x" with body "{...}".` The path and body are
 * Rust debug strings, which read as JSON strings for these ASCII bodies.
 */
export const loggedRequests = (consoleLog: string): Array<LoggedRequest> => {
  const text = fs.existsSync(consoleLog) ? fs.readFileSync(consoleLog, "utf8") : ""
  const requests: Array<LoggedRequest> = []
  for (const match of text.matchAll(
    /The API server received a (\w+) request on ("(?:[^"\\]|\\.)*")(?: with body ("(?:[^"\\]|\\.)*"))?\./g
  )) {
    const body = match[3] === undefined ? undefined : (JSON.parse(JSON.parse(match[3]) as string) as unknown)
    requests.push({ method: match[1]!.toUpperCase(), path: JSON.parse(match[2]!) as string, body })
  }
  return requests
}

/** Launch in a scope that closes successfully (the VM keeps running), as a create that persisted its row. */
export const runScoped = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.scoped(effect)
