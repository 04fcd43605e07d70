/**
 * The VMM processes themselves: started detached (own session, output to files) so that they
 * outlive the daemon, and afterwards known only by pid + start time, never by a ChildProcess handle.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import { Duration, Effect } from "effect"
import { VmmError } from "../../domain/errors.js"
import { isSameProcess, readStartTime } from "../host/process-identity.js"

export { isSameProcess, readStartTime }

/**
 * Sends `signal` only if `pid` is still the process with `startTime`; false when it is not (gone or
 * reused). The check and the kill are not atomic, but a pid is reused only after the old process
 * is reaped, and a few microseconds apart that is as close as Node gets without pidfds.
 */
export const signalIfSame = (pid: number, startTime: string, signal: NodeJS.Signals): boolean => {
  if (!isSameProcess(pid, startTime)) return false
  try {
    process.kill(pid, signal)
    return true
  } catch {
    return false
  }
}

/**
 * Calls `check` every `intervalMs` until it returns a value, for at most `timeoutMs` (at least
 * once); undefined on timeout.
 */
export const pollFor = <T>(
  check: () => T | undefined,
  intervalMs: number,
  timeoutMs: number
): Effect.Effect<T | undefined> =>
  Effect.suspend(() => {
    const deadline = Date.now() + timeoutMs
    const loop: Effect.Effect<T | undefined> = Effect.suspend(() => {
      const value = check()
      if (value !== undefined) return Effect.succeed(value)
      if (Date.now() >= deadline) return Effect.succeed(undefined)
      return Effect.zipRight(Effect.sleep(Duration.millis(intervalMs)), loop)
    })
    return loop
  })

/** Polls until the process is gone; true if it went within `timeoutMs`. */
export const waitGone = (pid: number, startTime: string, timeoutMs: number): Effect.Effect<boolean> =>
  pollFor(() => (isSameProcess(pid, startTime) ? undefined : true), 20, timeoutMs).pipe(
    Effect.map((gone) => gone === true)
  )

/** SIGKILL (if still ours) and wait for it to go: the rollback of a launch. */
export const killAndWait = (pid: number, startTime: string): Effect.Effect<void> =>
  Effect.suspend(() => {
    signalIfSame(pid, startTime, "SIGKILL")
    return waitGone(pid, startTime, 5000)
  }).pipe(Effect.asVoid)

export interface SpawnedVmm {
  readonly pid: number
  readonly startTime: string
}

/**
 * Starts `argv` in its own session with cwd `cwd`, stdin from /dev/null, stdout and stderr appended
 * to `outputFile`, and nothing tying it to this process: no pipes, unref'd. What it ran as is then
 * only its pid and start time.
 */
export const spawnDetached = (
  vmId: string,
  argv: ReadonlyArray<string>,
  cwd: string,
  outputFile: string
): Effect.Effect<SpawnedVmm, VmmError> =>
  Effect.async<SpawnedVmm, VmmError>((resume) => {
    const [executable, ...args] = argv
    let output: number
    try {
      output = fs.openSync(outputFile, "a", 0o600)
    } catch (error) {
      resume(Effect.fail(new VmmError({ vmId, reason: `cannot open ${outputFile}: ${String(error)}` })))
      return
    }
    try {
      const child = spawn(executable!, args, { detached: true, cwd, stdio: ["ignore", output, output] })
      // spawn reports a missing binary asynchronously; a pid means the fork happened.
      child.once("error", (error) =>
        resume(Effect.fail(new VmmError({ vmId, reason: `cannot start ${executable}: ${error.message}` })))
      )
      child.once("spawn", () => {
        child.unref()
        const startTime = child.pid === undefined ? undefined : readStartTime(child.pid)
        if (child.pid === undefined || startTime === undefined) {
          resume(
            Effect.fail(new VmmError({ vmId, reason: `the VMM exited at once: ${logTail(outputFile) || "no output"}` }))
          )
          return
        }
        resume(Effect.succeed({ pid: child.pid, startTime }))
      })
    } finally {
      fs.closeSync(output)
    }
  })

/** The last lines of a log, for an error message about a VMM that died. */
export const logTail = (file: string, lines = 5): string => {
  try {
    const text = fs.readFileSync(file, "utf8")
    return text
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line !== "")
      .slice(-lines)
      .join(" | ")
  } catch {
    return ""
  }
}

/**
 * When a step after spawning fails because the VMM died, the VMM's last words say why (bad kernel,
 * KVM missing, ...): they are added to the error. A VMM on its way out may still be there when its
 * socket already failed us: it gets a moment to finish exiting. `answered` marks errors the VMM
 * itself gave (an API refusal): it is alive, and they need no explaining.
 */
export const explainExit =
  (vmId: string, spawned: SpawnedVmm, outputFile: string, answered: (error: VmmError) => boolean = () => false) =>
  <A, R>(self: Effect.Effect<A, VmmError, R>): Effect.Effect<A, VmmError, R> =>
    Effect.catchAll(self, (error) =>
      error.reason.startsWith("the VMM exited") || answered(error)
        ? Effect.fail(error)
        : Effect.flatMap(waitGone(spawned.pid, spawned.startTime, 1000), (gone) =>
            Effect.fail(
              gone
                ? new VmmError({
                    vmId,
                    reason: `${error.reason}; the VMM exited: ${logTail(outputFile) || "no output"}`
                  })
                : error
            )
          )
    )
