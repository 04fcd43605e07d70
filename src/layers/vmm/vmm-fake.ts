import * as path from "node:path"
import { Effect, Exit } from "effect"
import type { VmmError } from "../../domain/errors.js"
import type { StopOptions, StopOutcome, VmLaunchSpec, VmProcess } from "../../domain/vmm.js"
import type { VmmShape } from "./vmm.js"

export interface VmmFake {
  readonly vmm: VmmShape
  readonly launches: Array<VmLaunchSpec>
  readonly stops: Array<{ readonly vmId: string; readonly options: StopOptions; readonly outcome: StopOutcome }>
  /** VM ids whose launch was rolled back by the caller's scope closing with a failure. */
  readonly rolledBack: Array<string>
  /** VM ids the fake considers running. */
  readonly running: Set<string>
  /** Set to make the next launches fail (they are still recorded). */
  failLaunch: VmmError | undefined
}

/**
 * A stand-in for Vmm that starts nothing: launches hand back a made-up process (pid counting up
 * from 4_000_000, above any real pid_max) and mark the VM running until it is stopped or its
 * launch's scope fails.
 */
export const makeVmmFake = (): VmmFake => {
  let nextPid = 4_000_000
  const launch: VmmShape["launch"] = (spec) =>
    Effect.acquireRelease(
      Effect.suspend(() => {
        fake.launches.push(spec)
        if (fake.failLaunch !== undefined) return Effect.fail(fake.failLaunch)
        fake.running.add(spec.vmId)
        const proc: VmProcess = {
          vmId: spec.vmId,
          backend: spec.backend,
          pid: nextPid++,
          startTime: "1",
          controlSocket: path.join(spec.runDir, spec.backend === "qemu" ? "qmp.sock" : "firecracker.sock"),
          consoleLog: spec.consoleLog,
          accel: spec.backend === "firecracker" || spec.accel === "kvm" ? "kvm" : "tcg",
          accelReason: "fake",
          timings: { spawnedMs: 0, startedMs: 0 }
        }
        return Effect.succeed(proc)
      }),
      (proc, exit) =>
        Effect.sync(() => {
          if (Exit.isFailure(exit) && fake.running.delete(proc.vmId)) fake.rolledBack.push(proc.vmId)
        })
    )
  const stop: VmmShape["stop"] = (proc, options) =>
    Effect.sync(() => {
      const outcome: StopOutcome = fake.running.delete(proc.vmId)
        ? options.force
          ? "terminated"
          : "clean"
        : "already-gone"
      fake.stops.push({ vmId: proc.vmId, options, outcome })
      return outcome
    })
  const inspect: VmmShape["inspect"] = (proc) =>
    Effect.sync(() =>
      fake.running.has(proc.vmId)
        ? { state: "running" as const, detail: "fake" }
        : { state: "gone" as const, detail: "fake: not running" }
    )
  const fake: VmmFake = {
    vmm: {
      launch,
      stop,
      inspect,
      kvmStatus: Effect.succeed({ usable: false, reason: "fake" }),
      firecrackerAvailable: Effect.succeed(false)
    },
    launches: [],
    stops: [],
    rolledBack: [],
    running: new Set(),
    failLaunch: undefined
  }
  return fake
}
