import { Schema } from "effect"
import { KernelFormat } from "./image.js"

/** The hypervisors banger drives. */
export const VmmBackend = Schema.Literal("firecracker", "qemu")
export type VmmBackend = typeof VmmBackend.Type

/** How QEMU runs guest code; Firecracker is always KVM. */
export const Accel = Schema.Literal("kvm", "tcg")
export type Accel = typeof Accel.Type

/** What a caller asks for: `auto` is KVM when the host can run KVM guests, else TCG. */
export const AccelRequest = Schema.Literal("kvm", "tcg", "auto")
export type AccelRequest = typeof AccelRequest.Type

/** Everything a VMM needs to boot one VM; paths are absolute. */
export const VmLaunchSpec = Schema.Struct({
  vmId: Schema.String,
  backend: VmmBackend,
  /** QEMU only; Firecracker ignores it. */
  accel: AccelRequest,
  cpus: Schema.Int,
  memoryMib: Schema.Int,
  kernel: Schema.String,
  /** Firecracker (released versions) loads only an ELF vmlinux; QEMU boots both (microvm for ELF). */
  kernelFormat: KernelFormat,
  initrd: Schema.optional(Schema.String),
  bootArgs: Schema.String,
  /** Attached read-write as the first virtio-blk disk (/dev/vda). */
  rootDisk: Schema.String,
  /** The VM's own directory: control socket and VMM log live here (paths must stay < 108 bytes). */
  runDir: Schema.String,
  /** The guest's serial console, appended to. */
  consoleLog: Schema.String,
  /** The guest's eth0: a tap that exists already (the Network service made it) and its MAC. */
  network: Schema.optional(Schema.Struct({ tap: Schema.String, mac: Schema.String }))
})
export type VmLaunchSpec = typeof VmLaunchSpec.Type

/**
 * A running VMM, as the VM row keeps it. `pid` plus `startTime` (clock ticks since host boot,
 * /proc/<pid>/stat field 22) name the process: a pid reused after the VMM died has another start
 * time, so it is never mistaken for (or signalled as) ours.
 */
export const VmProcess = Schema.Struct({
  vmId: Schema.String,
  backend: VmmBackend,
  pid: Schema.Int,
  startTime: Schema.String,
  /** Firecracker's API socket or QEMU's QMP socket. */
  controlSocket: Schema.String,
  consoleLog: Schema.String,
  /** What the guest runs under (Firecracker: always kvm). */
  accel: Accel,
  /** Why that accel: the request, and any fallback (e.g. KVM guests do not run on this host). */
  accelReason: Schema.String,
  /** From the `launch` call: to the VMM process spawned, and to the guest started (for benchmarks). */
  timings: Schema.Struct({ spawnedMs: Schema.Number, startedMs: Schema.Number })
})
export type VmProcess = typeof VmProcess.Type

/** `running`: our process, its API/QMP answers. `unresponsive`: ours, but no answer. `gone`: no such process, or the pid is someone else's now. */
export const VmRunState = Schema.Literal("running", "unresponsive", "gone")
export type VmRunState = typeof VmRunState.Type

export const VmInspection = Schema.Struct({
  state: VmRunState,
  /** The VMM's own word when it answered (Firecracker `state`, QEMU `query-status`), else why not. */
  detail: Schema.String
})
export type VmInspection = typeof VmInspection.Type

/** Which step of the stop ladder ended the VMM. */
export const StopOutcome = Schema.Literal("clean", "terminated", "killed", "already-gone")
export type StopOutcome = typeof StopOutcome.Type

export interface StopOptions {
  /** How long the guest gets to power off after the polite request (ACPI / Ctrl-Alt-Del). */
  readonly graceMs: number
  /** Skip the polite request: SIGTERM at once (SIGKILL if that is ignored). */
  readonly force?: boolean
}
