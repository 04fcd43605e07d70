import { Effect } from "effect"
import { VmmError } from "../../domain/errors.js"
import type { StopOptions, StopOutcome, VmInspection, VmProcess } from "../../domain/vmm.js"
import { isSameProcess, signalIfSame, waitGone } from "./process.js"
import { removeSocket, removeStaleSocket } from "./unix-socket.js"

/** How long a VMM gets to exit on SIGTERM before SIGKILL. */
export const TERM_GRACE_MS = 3000

/**
 * Polite request (unless forced), `graceMs` to power off, SIGTERM, SIGKILL: each signal only to
 * the process whose start time still matches. The control socket is removed once the VMM is gone.
 */
export const stopLadder = (
  proc: VmProcess,
  options: StopOptions,
  polite: Effect.Effect<void, VmmError>
): Effect.Effect<StopOutcome, VmmError> =>
  Effect.gen(function* () {
    const { pid, startTime } = proc
    // Not ours (any more): its socket is stale, unless something still serves it.
    if (!isSameProcess(pid, startTime))
      return yield* Effect.as(removeStaleSocket(proc.controlSocket), "already-gone" as const)
    const outcome = yield* ladder(proc, options, polite)
    // We saw our VMM go: its socket is ours to remove, even if its last threads still hold it open.
    yield* removeSocket(proc.controlSocket)
    return outcome
  })

const ladder = (proc: VmProcess, options: StopOptions, polite: Effect.Effect<void, VmmError>) =>
  Effect.gen(function* () {
    const { pid, startTime } = proc
    let asked = false
    if (!options.force) {
      // A VMM that cannot take the request (hung API, guest paused) still gets the signals.
      asked = yield* polite.pipe(
        Effect.as(true),
        Effect.catchAll(() => Effect.succeed(false))
      )
      if (yield* waitGone(pid, startTime, asked ? options.graceMs : 0)) return "clean" as const
    }
    if (!signalIfSame(pid, startTime, "SIGTERM")) return asked ? ("clean" as const) : ("already-gone" as const)
    if (yield* waitGone(pid, startTime, TERM_GRACE_MS)) return "terminated" as const
    if (!signalIfSame(pid, startTime, "SIGKILL")) return "terminated" as const
    if (yield* waitGone(pid, startTime, 5000)) return "killed" as const
    return yield* new VmmError({ vmId: proc.vmId, reason: `VMM process ${pid} is still there after SIGKILL` })
  })

/** `gone` unless the pid is still our process; then `ask` decides running vs unresponsive. */
export const inspectWith = (proc: VmProcess, ask: Effect.Effect<string, VmmError>): Effect.Effect<VmInspection> =>
  Effect.suspend(() =>
    isSameProcess(proc.pid, proc.startTime)
      ? ask.pipe(
          Effect.map((detail): VmInspection => ({ state: "running", detail })),
          Effect.catchAll((error) => Effect.succeed<VmInspection>({ state: "unresponsive", detail: error.reason }))
        )
      : Effect.succeed<VmInspection>({
          state: "gone",
          detail: `process ${proc.pid} with start time ${proc.startTime} is not running`
        })
  )
