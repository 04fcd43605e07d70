import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Either, Exit } from "effect"
import { VmmError } from "../../../domain/errors.js"
import type { Accel, VmLaunchSpec, VmProcess } from "../../../domain/vmm.js"
import { explainExit, isSameProcess, killAndWait, pollFor, type SpawnedVmm, spawnDetached } from "../process.js"
import { inspectWith, stopLadder } from "../stop-ladder.js"
import { checkSocketPath, removeSocket, waitForSocket } from "../unix-socket.js"
import type { BackendShape } from "../vmm.js"
import { type KvmHostOptions, kvmStatus, rememberKvmBroken } from "./kvm-host.js"
import { machineFor, qemuArgv } from "./qemu-argv.js"
import { qmpExecute } from "./qmp-client.js"

export const QMP_SOCKET_FILE = "qmp.sock"
/** QEMU's own messages (stderr); the guest console goes to the spec's console log. */
export const QEMU_LOG_FILE = "qemu.log"

export interface QemuOptions {
  readonly bin: string
  readonly socketTimeoutMs: number
  /** How long a guest under `auto`-chosen KVM may stay silent before it is retried under TCG. */
  readonly kvmSilenceMs: number
  readonly kvmHost: KvmHostOptions
}

/** A line only the kernel prints: its banner or a printk timestamp (firmware output does not count). */
const KERNEL_OUTPUT = /Linux version \d|^\[\s*\d+\.\d+\] /m

const fileSize = (file: string) => {
  try {
    return fs.statSync(file).size
  } catch {
    return 0
  }
}

const readFrom = (file: string, offset: number) => {
  try {
    return fs.readFileSync(file).subarray(offset).toString("latin1")
  } catch {
    return ""
  }
}

/** True once the kernel has printed to the console log past `offset`; false after `timeoutMs` or if the VMM died. */
const kernelSpoke = (proc: SpawnedVmm, consoleLog: string, offset: number, timeoutMs: number) =>
  pollFor(
    () => {
      if (KERNEL_OUTPUT.test(readFrom(consoleLog, offset))) return true
      return isSameProcess(proc.pid, proc.startTime) ? undefined : false
    },
    50,
    timeoutMs
  ).pipe(Effect.map((spoke) => spoke === true))

export const makeQemuBackend = (options: QemuOptions): BackendShape => {
  const start = (spec: VmLaunchSpec, accel: Accel, accelReason: string, began: number) =>
    Effect.gen(function* () {
      const qmpSocket = path.join(spec.runDir, QMP_SOCKET_FILE)
      const qemuLog = path.join(spec.runDir, QEMU_LOG_FILE)
      yield* checkSocketPath(spec.vmId, qmpSocket)
      yield* removeSocket(qmpSocket)
      const argv = qemuArgv({ bin: options.bin, spec, accel, machine: machineFor(spec), qmpSocket })
      const cleanup = (spawned: SpawnedVmm) =>
        killAndWait(spawned.pid, spawned.startTime).pipe(Effect.zipRight(removeSocket(qmpSocket)))
      const spawned = yield* Effect.acquireRelease(spawnDetached(spec.vmId, argv, spec.runDir, qemuLog), (s, exit) =>
        Exit.isFailure(exit) ? cleanup(s) : Effect.void
      )
      const spawnedMs = performance.now() - began
      yield* Effect.gen(function* () {
        yield* waitForSocket({
          vmId: spec.vmId,
          socketPath: qmpSocket,
          pid: spawned.pid,
          startTime: spawned.startTime,
          timeoutMs: options.socketTimeoutMs,
          outputFile: qemuLog
        })
        const status = yield* qmpExecute(spec.vmId, qmpSocket, "query-status")
        const running = (status as { running?: unknown } | undefined)?.running
        if (running !== true)
          return yield* new VmmError({
            vmId: spec.vmId,
            reason: `QEMU is not running the guest: ${JSON.stringify(status)}`
          })
      }).pipe(
        explainExit(spec.vmId, spawned, qemuLog),
        Effect.onError(() => cleanup(spawned)),
        Effect.withSpan("Vmm.qemu.start", { attributes: { accel } })
      )
      return {
        vmId: spec.vmId,
        backend: "qemu",
        pid: spawned.pid,
        startTime: spawned.startTime,
        controlSocket: qmpSocket,
        consoleLog: spec.consoleLog,
        accel,
        accelReason,
        timings: { spawnedMs, startedMs: performance.now() - began }
      } satisfies VmProcess
    })

  const launch: BackendShape["launch"] = (spec) =>
    Effect.gen(function* () {
      const began = performance.now()
      if (spec.accel !== "auto") return yield* start(spec, spec.accel, `--accel ${spec.accel}`, began)
      const host = yield* kvmStatus(options.kvmHost)
      if (!host.usable) return yield* start(spec, "tcg", `auto: ${host.reason}`, began)
      const offset = fileSize(spec.consoleLog)
      const underKvm = yield* Effect.either(start(spec, "kvm", `auto: ${host.reason}`, began))
      if (Either.isLeft(underKvm))
        return yield* start(spec, "tcg", `auto: QEMU failed under KVM (${underKvm.left.reason}); using TCG`, began)
      const proc = underKvm.right
      if (yield* kernelSpoke(proc, spec.consoleLog, offset, options.kvmSilenceMs)) return proc
      yield* killAndWait(proc.pid, proc.startTime).pipe(Effect.zipRight(removeSocket(proc.controlSocket)))
      const seconds = options.kvmSilenceMs / 1000
      yield* rememberKvmBroken(options.kvmHost, `a guest printed no kernel output within ${seconds} s under KVM`)
      return yield* start(
        spec,
        "tcg",
        `auto: the guest printed nothing within ${seconds} s under KVM; retried under TCG, and this host is remembered as one where KVM guests do not run`,
        began
      )
    })

  // Both polite requests: the ACPI button needs the guest to listen for it (systemd-logind with the
  // button module, banger's init with acpid), while Ctrl-Alt-Del reaches any init through the
  // kernel (systemd reboots on it, which -no-reboot turns into QEMU exiting, as Firecracker does).
  // A microvm has no keyboard: its send-key fails, and the ACPI request stands alone.
  const stop: BackendShape["stop"] = (proc, stopOptions) => {
    const qmp = (command: string, args?: Record<string, unknown>) =>
      qmpExecute(proc.vmId, proc.controlSocket, command, { timeoutMs: 2000, closeIsSuccess: true, arguments: args })
    const ctrlAltDel = { keys: ["ctrl", "alt", "delete"].map((key) => ({ type: "qcode", data: key })) }
    return stopLadder(
      proc,
      stopOptions,
      qmp("system_powerdown").pipe(Effect.zipRight(qmp("send-key", ctrlAltDel).pipe(Effect.ignore)), Effect.asVoid)
    )
  }

  const inspect: BackendShape["inspect"] = (proc) =>
    inspectWith(
      proc,
      qmpExecute(proc.vmId, proc.controlSocket, "query-status", { timeoutMs: 2000 }).pipe(
        Effect.map((status) => {
          const value = (status as { status?: unknown } | undefined)?.status
          return typeof value === "string" ? value : JSON.stringify(status)
        })
      )
    )

  return { launch, stop, inspect }
}
