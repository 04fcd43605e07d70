import { Schema } from "effect"
import { KernelFormat } from "./image.js"
import { VmNetwork } from "./network.js"
import { Accel, AccelRequest, VmmBackend } from "./vmm.js"

/**
 * What the VM row says; `vm list` / `vm show` check it against the process (pid + start time,
 * API/QMP answering) before reporting. `creating` rows exist only while a create operation runs.
 */
export const VmState = Schema.Literal("creating", "running", "stopped")
export type VmState = typeof VmState.Type

/** A VM as recorded in the state database. */
export class Vm extends Schema.Class<Vm>("Vm")({
  id: Schema.String,
  name: Schema.String,
  /** The image it was created from (name and id: the name may be reused after a delete). */
  image: Schema.String,
  imageId: Schema.String,
  vmm: VmmBackend,
  /** Why this VMM: the user's `--vmm`, or what the host and kernel allowed. */
  vmmReason: Schema.String,
  /** Of the image's kernel, read when the VM was created: Firecracker boots only `elf`. */
  kernelFormat: KernelFormat,
  /** `init=` for images booted with banger's built-in init; null boots the image's own /sbin/init. */
  init: Schema.NullOr(Schema.String),
  /** `auto` is resolved at each start (kvm, or tcg where KVM guests do not run). */
  accel: AccelRequest,
  cpus: Schema.Int,
  memoryMib: Schema.Int,
  diskBytes: Schema.Number,
  /** `<state>/vms/<id>/`: the work disk, console log, sockets. */
  dir: Schema.String,
  state: VmState,
  /** The VMM process while running: pid plus its start time, so a reused pid is never ours. */
  pid: Schema.NullOr(Schema.Int),
  pidStartTime: Schema.NullOr(Schema.String),
  /** The accel the running VMM actually uses, and why. */
  runningAccel: Schema.NullOr(Accel),
  accelReason: Schema.NullOr(Schema.String),
  /** Firecracker's API socket or QEMU's QMP socket of the running VMM. */
  controlSocket: Schema.NullOr(Schema.String),
  /** How the last run ended (`powered off`, `killed`, `VMM exited (code 1)`...); null while running. */
  lastExit: Schema.NullOr(Schema.String),
  createdAt: Schema.String,
  startedAt: Schema.NullOr(Schema.String),
  stoppedAt: Schema.NullOr(Schema.String),
  /**
   * Its tap, MAC and addresses, kept for the VM's whole life; null for a VM made with
   * `--no-network` (and in operation results recorded before VMs had networks).
   */
  network: Schema.optionalWith(Schema.NullOr(VmNetwork), { default: () => null })
}) {}
