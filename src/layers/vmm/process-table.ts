import * as fs from "node:fs"
import { Context, Effect, Layer } from "effect"
import { killAndWait, readStartTime } from "./process.js"

/** A live process whose command line names a path banger owns. */
export interface NamingProcess {
  readonly pid: number
  readonly startTime: string
  /** The path it names (the argv entry it was found by contains it). */
  readonly argv: ReadonlyArray<string>
}

export interface ProcessTableShape {
  /**
   * Live processes with an argv entry under `dir` (e.g. `<state>/vms/`): how banger finds VMMs it
   * started and no longer has a row for. Only processes banger named that way can match.
   */
  readonly naming: (dir: string) => Effect.Effect<ReadonlyArray<NamingProcess>>
  /** SIGTERM, then SIGKILL, each only while the pid is still the process with that start time. */
  readonly terminate: (proc: NamingProcess) => Effect.Effect<void>
}

const scan = (dir: string): Array<NamingProcess> => {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`
  const found: Array<NamingProcess> = []
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    const pid = Number(entry)
    if (pid === process.pid) continue
    let argv: Array<string>
    try {
      argv = fs
        .readFileSync(`/proc/${pid}/cmdline`, "utf8")
        .split("\0")
        .filter((arg) => arg !== "")
    } catch {
      continue
    }
    if (!argv.some((arg) => arg.includes(prefix))) continue
    const startTime = readStartTime(pid)
    if (startTime !== undefined) found.push({ pid, startTime, argv })
  }
  return found
}

export class ProcessTable extends Context.Tag("banger/ProcessTable")<ProcessTable, ProcessTableShape>() {
  static readonly layer = Layer.succeed(ProcessTable, {
    naming: (dir) => Effect.sync(() => scan(dir)),
    terminate: (proc) => killAndWait(proc.pid, proc.startTime)
  })

  /** Pretends `processes` run; `terminated` collects what was ended. */
  static readonly layerTest = (processes: Array<NamingProcess>, terminated: Array<NamingProcess> = []) =>
    Layer.succeed(ProcessTable, {
      naming: (dir) => Effect.succeed(processes.filter((proc) => proc.argv.some((arg) => arg.includes(`${dir}/`)))),
      terminate: (proc) =>
        Effect.sync(() => {
          terminated.push(proc)
          processes.splice(processes.indexOf(proc), 1)
        })
    })
}
