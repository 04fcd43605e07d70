import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { FilesystemError, VmRefused } from "../../domain/errors.js"
import type { StopOutcome } from "../../domain/vmm.js"
import { Ext4Tools } from "../../layers/ext4/ext4-tools.js"
import { Store } from "../../layers/store/store.js"
import { Vmm } from "../../layers/vmm/vmm.js"
import { showImage } from "../image/manage-images.js"
import { bootVm, vmProcessOf } from "./boot.js"
import { findVm, recordStopped } from "./live-state.js"
import { detachVmNetwork } from "./vm-network.js"
import { WORK_DISK_NAME } from "./work-disk.js"

/** How long a guest gets to power off after ACPI / Ctrl-Alt-Del before the VMM is signalled. */
export const STOP_GRACE_MS = 30_000

const exitDescription: Record<StopOutcome, string> = {
  clean: "powered off",
  terminated: "the VMM was terminated (SIGTERM)",
  killed: "the VMM was killed (SIGKILL)",
  "already-gone": "the VMM had already exited"
}

/**
 * Boots a stopped VM: always a fresh VMM process on the VM's own disk, checked first. A forced
 * stop, or a VMM or host that died, leaves the guest's journal unreplayed, and banger reads the
 * disk with debugfs before every boot: debugfs refused such a disk ("Block bitmap checksum does
 * not match bitmap", after `vm stop --force`). `e2fsck -fp` replays the journal and fixes what is
 * safe to fix (tens of ms on a clean disk); a disk it cannot fix fails the start.
 */
export const startVm = Effect.fn("vm.start")(function* (name: string) {
  const store = yield* Store
  const ext4 = yield* Ext4Tools
  const vm = yield* findVm(name)
  if (vm.state === "running") return yield* new VmRefused({ name, reason: "it is running already" })
  const image = yield* showImage(vm.image)
  yield* ext4.repair(path.join(vm.dir, WORK_DISK_NAME))
  return yield* Effect.scoped(
    Effect.gen(function* () {
      const running = yield* bootVm(vm, image)
      yield* store.vms.update(running)
      return running
    })
  )
})

/** Asks the guest to power off (`force`: signals at once); a stopped VM is returned as it is. */
export const stopVm = Effect.fn("vm.stop")(function* (name: string, options: { readonly force?: boolean } = {}) {
  const vmm = yield* Vmm
  const vm = yield* findVm(name)
  const proc = vmProcessOf(vm)
  if (vm.state !== "running" || proc === undefined) return vm
  const outcome = yield* vmm.stop(proc, { graceMs: STOP_GRACE_MS, force: options.force ?? false })
  return yield* recordStopped(vm, exitDescription[outcome])
})

export const restartVm = Effect.fn("vm.restart")(function* (name: string) {
  yield* stopVm(name)
  return yield* startVm(name)
})

/**
 * Removes the row (and its address lease), then the VM's tap if one is left, then its directory
 * (disk, logs, sockets): a crash in between leaves a directory or tap no row knows, which the next
 * daemon start removes. A running VM needs `force`.
 */
export const deleteVm = Effect.fn("vm.delete")(function* (name: string, options: { readonly force?: boolean } = {}) {
  const store = yield* Store
  const fs = yield* FileSystem.FileSystem
  const vm = yield* findVm(name)
  if (vm.state === "running") {
    if (!options.force) {
      return yield* new VmRefused({ name, reason: "it is running: stop it first (banger vm stop) or pass --force" })
    }
    yield* stopVm(name, { force: true })
  }
  yield* store.vms.remove(vm.id)
  yield* detachVmNetwork(vm)
  yield* fs
    .remove(vm.dir, { recursive: true, force: true })
    .pipe(Effect.mapError((error) => new FilesystemError({ path: vm.dir, reason: error.message })))
  return vm
})
