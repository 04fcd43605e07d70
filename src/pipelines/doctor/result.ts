import { Effect } from "effect"
import { DoctorCheck } from "../../domain/doctor.js"
import { HostProbe } from "../../layers/host/host-probe.js"

export const ok = (name: string, detail: string) => new DoctorCheck({ name, status: "ok", detail })
export const warn = (name: string, detail: string, fix: string) =>
  new DoctorCheck({ name, status: "warn", detail, fix })
export const fail = (name: string, detail: string, fix: string) =>
  new DoctorCheck({ name, status: "fail", detail, fix })

/** A program found and asked for its version: the version `pattern` captures, or why there is none. */
export type Tool =
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Broken"; readonly path: string; readonly output: string }
  | { readonly _tag: "Found"; readonly path: string; readonly version: string }

/** The first line of a program's output, for messages. */
export const firstLine = (text: string) => text.trim().split("\n")[0] ?? ""

/**
 * Runs `file args` (a path, or a command looked up on PATH) and reads its version with `pattern`
 * (first group): `Broken` when it will not run or prints no version.
 */
export const probeTool = (command: string, args: ReadonlyArray<string>, pattern: RegExp) =>
  Effect.gen(function* () {
    const host = yield* HostProbe
    const file = command.includes("/") ? command : yield* host.which(command)
    if (file === undefined || (yield* host.stat(file)) === undefined) return { _tag: "Missing" } as Tool
    const result = yield* host.run(file, args)
    const version = pattern.exec(result.output)?.[1]
    if (result.exitCode !== 0 || version === undefined) {
      return { _tag: "Broken", path: file, output: firstLine(result.output) || `exit code ${result.exitCode}` } as Tool
    }
    return { _tag: "Found", path: file, version } as Tool
  })
