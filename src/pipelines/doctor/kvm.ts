import { Effect } from "effect"
import { HostProbe } from "../../layers/host/host-probe.js"
import { StatePaths } from "../../layers/state/state-paths.js"
import { firstLine, ok, warn } from "./result.js"

export const KVM_DEVICE = "/dev/kvm"

/** What /dev/kvm offers: Firecracker needs `usable`; QEMU falls back to TCG without it. */
export type KvmState =
  | { readonly _tag: "Absent" }
  | { readonly _tag: "NotCharDevice" }
  | { readonly _tag: "Denied"; readonly code: string }
  | { readonly _tag: "GuestsDoNotRun"; readonly memory: string; readonly why: string }
  | { readonly _tag: "Usable" }

export const kvmState = Effect.gen(function* () {
  const host = yield* HostProbe
  const paths = yield* StatePaths
  const device = yield* host.stat(KVM_DEVICE)
  if (device === undefined) return { _tag: "Absent" } as KvmState
  if (device.kind !== "character-device") return { _tag: "NotCharDevice" } as KvmState
  const opened = yield* host.open(KVM_DEVICE, "read-write")
  if (opened._tag === "Denied") return { _tag: "Denied", code: opened.code } as KvmState
  const memory = yield* host.readText(paths.kvmGuestsDoNotRun)
  if (memory !== undefined) {
    return { _tag: "GuestsDoNotRun", memory: paths.kvmGuestsDoNotRun, why: firstLine(memory) } as KvmState
  }
  return { _tag: "Usable" } as KvmState
})

const FALLBACK = "Firecracker cannot run; QEMU emulates the CPU (TCG, much slower)"

/** /dev/kvm present, read-write for this process, and not remembered as running no guests. */
export const checkKvm = Effect.gen(function* () {
  const state = yield* kvmState
  const user = (yield* (yield* HostProbe).env("USER")) ?? "$USER"
  switch (state._tag) {
    case "Absent":
      return warn(
        "kvm",
        `${KVM_DEVICE} does not exist: ${FALLBACK}`,
        "load KVM: modprobe kvm_intel (or kvm_amd), enable virtualization in the firmware; in a VM, enable nested virtualization"
      )
    case "NotCharDevice":
      return warn(
        "kvm",
        `${KVM_DEVICE} is not a character device: ${FALLBACK}`,
        `remove ${KVM_DEVICE} and modprobe kvm`
      )
    case "Denied":
      return warn(
        "kvm",
        `${KVM_DEVICE} cannot be opened read-write (${state.code}): ${FALLBACK}`,
        `sudo usermod -aG kvm ${user} (then log in again and restart the banger daemon)`
      )
    case "GuestsDoNotRun":
      return warn(
        "kvm",
        `${KVM_DEVICE} opens read-write, but guests did not run on it (${state.why}): VMs run under QEMU with TCG`,
        `enable (nested) virtualization for this host, then rm ${state.memory} so that banger tries KVM again`
      )
    case "Usable":
      return ok("kvm", `${KVM_DEVICE} opens read-write`)
  }
})
