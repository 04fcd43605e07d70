import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { Clock, DateTime, Effect } from "effect"
import type { Image } from "../../domain/image.js"
import { SSH_PORT } from "../../domain/ssh.js"
import { Vm } from "../../domain/vm.js"
import type { VmProcess } from "../../domain/vmm.js"
import { kernelIpArg } from "../../layers/network/address.js"
import { Vmm } from "../../layers/vmm/vmm.js"
import { inspectKernelFile } from "../kernel/inspect-kernel.js"
import { reportStage } from "../pull/progress.js"
import { bootArgs } from "./boot-args.js"
import { findSshd } from "./guest-ssh.js"
import { kernelIpAutoconfig } from "./kernel-ip-config.js"
import { guestAddress } from "./ssh-target.js"
import { CONSOLE_LOG } from "./vm-dir.js"
import { attachVmNetwork } from "./vm-network.js"
import { waitReady } from "./wait-ready.js"
import { waitSsh } from "./wait-ssh.js"
import { WORK_DISK_NAME } from "./work-disk.js"

/** Milliseconds since `began` (the Clock's nanoseconds), to a tenth. */
export const elapsedMs = (began: bigint) =>
  Effect.map(Clock.currentTimeNanos, (now) => Math.round(Number(now - began) / 1e5) / 10)

/** Generous: a systemd Debian under TCG on a busy two-core host takes a minute or more. */
export const READY_TIMEOUT = "5 minutes"
/** After the ready line: systemd starts sshd alongside the ready unit, banger's init just before it. */
export const SSH_READY_TIMEOUT = "2 minutes"

/** The row's process fields as the Vmm service wants them back. */
export const vmProcessOf = (vm: Vm): VmProcess | undefined =>
  vm.pid === null || vm.pidStartTime === null || vm.controlSocket === null
    ? undefined
    : {
        vmId: vm.id,
        backend: vm.vmm,
        pid: vm.pid,
        startTime: vm.pidStartTime,
        controlSocket: vm.controlSocket,
        consoleLog: path.join(vm.dir, CONSOLE_LOG),
        accel: vm.runningAccel ?? "tcg",
        accelReason: vm.accelReason ?? "",
        timings: { spawnedMs: 0, startedMs: 0 }
      }

/** A create's clock: when it began, and what it did before the boot (for its timing log line). */
export interface CreateTimeline {
  readonly began: bigint
  readonly steps: string
  /** The create brought the tap up already, alongside the work disk (it does not need the disk). */
  readonly networkUp: boolean
  /** What configure-guest was told of the kernel's IP autoconfiguration (ip= or the guest sets eth0). */
  readonly kernelConfigures: boolean
}

/**
 * Brings up the VM's tap, starts the VMM on the VM's work disk and waits for the guest's ready
 * line, then, when the image has sshd and the VM an address, for sshd's banner. Tap and VMM
 * belong to the caller's scope until then: a failure or a cancel kills the VMM and removes the
 * tap. Returns the row as running.
 */
export const bootVm = Effect.fn("vm.boot")(function* (vm: Vm, image: Image, timeline?: CreateTimeline) {
  const vmm = yield* Vmm
  const fs = yield* FileSystem.FileSystem
  const consoleLog = path.join(vm.dir, CONSOLE_LOG)
  const rootDisk = path.join(vm.dir, WORK_DISK_NAME)
  yield* reportStage("boot")
  // Independent of one another, so side by side: the tap and nftables (a few `ip`/`nft` runs),
  // sshd looked for on the disk (read before the VMM has it; at every boot, since the guest may
  // have gained or lost sshd), the kernel's IP autoconfiguration (whether the kernel sets eth0
  // from ip= or the guest does: a create passes the answer configure-guest got, a start reads it), where this boot's console
  // output starts (the log keeps every earlier boot for `vm logs`).
  const [sshd, kernelConfigures, fromByte] = yield* Effect.all(
    [
      findSshd(rootDisk),
      vm.network === null || timeline !== undefined
        ? Effect.succeed(timeline?.kernelConfigures ?? false)
        : Effect.flatMap(inspectKernelFile(image.kernel), (info) => kernelIpAutoconfig(image.kernel, info.release)),
      fs.stat(consoleLog).pipe(
        Effect.map((info) => Number(info.size)),
        Effect.orElseSucceed(() => 0)
      ),
      timeline?.networkUp === true ? Effect.void : attachVmNetwork(vm)
    ],
    { concurrency: "unbounded" }
  )
  const ip = vm.network !== null && kernelConfigures ? kernelIpArg(vm.network) : undefined
  const launchAt = timeline === undefined ? 0 : yield* elapsedMs(timeline.began)
  const proc = yield* vmm.launch({
    vmId: vm.id,
    backend: vm.vmm,
    accel: vm.accel,
    cpus: vm.cpus,
    memoryMib: vm.memoryMib,
    kernel: image.kernel,
    kernelFormat: vm.kernelFormat,
    initrd: image.initrd ?? undefined,
    bootArgs: bootArgs({ vmm: vm.vmm, init: vm.init ?? undefined, ip }),
    rootDisk,
    runDir: vm.dir,
    consoleLog,
    network: vm.network === null ? undefined : { tap: vm.network.tap, mac: vm.network.mac }
  })
  if (timeline !== undefined) {
    const at = (ms: number) => Math.round((launchAt + ms) * 10) / 10
    yield* Effect.logInfo(
      `vm ${vm.name} create: VMM spawned at ${at(proc.timings.spawnedMs)} ms, answering at ${at(proc.timings.startedMs)} ms (${timeline.steps}; since the create began)`
    )
  }
  yield* reportStage("ready")
  const alive = Effect.map(vmm.inspect(proc), (inspection) => inspection.state !== "gone")
  yield* waitReady({ name: vm.name, consoleLog, fromByte, timeout: READY_TIMEOUT, alive })
  const address = guestAddress(vm)
  if (sshd !== undefined && address !== undefined) {
    yield* reportStage("ssh")
    yield* waitSsh({ name: vm.name, address, port: SSH_PORT, timeout: SSH_READY_TIMEOUT, alive, consoleLog })
  }
  return new Vm({
    ...vm,
    state: "running",
    pid: proc.pid,
    pidStartTime: proc.startTime,
    runningAccel: proc.accel,
    accelReason: proc.accelReason,
    controlSocket: proc.controlSocket,
    lastExit: null,
    startedAt: DateTime.formatIso(yield* DateTime.now)
  })
})
