import { DateTime, Effect, Option } from "effect"
import { VmNotFound } from "../../domain/errors.js"
import { Vm } from "../../domain/vm.js"
import { Store } from "../../layers/store/store.js"
import { Vmm } from "../../layers/vmm/vmm.js"
import { vmProcessOf } from "./boot.js"
import { detachVmNetwork } from "./vm-network.js"

/**
 * The row checked against the process: a VM recorded as running whose VMM is gone (guest powered
 * off, crashed, killed) is recorded as stopped, with how it was found, before anyone is told.
 */
export const liveVm = Effect.fn("vm.live")(function* (vm: Vm, foundBy: string) {
  if (vm.state !== "running") return vm
  const vmm = yield* Vmm
  const proc = vmProcessOf(vm)
  const inspection = proc === undefined ? undefined : yield* vmm.inspect(proc)
  if (inspection !== undefined && inspection.state !== "gone") return vm
  return yield* recordStopped(vm, `the VMM exited on its own (found by ${foundBy})`)
})

/**
 * The row as stopped, with how its last run ended: no process fields, the time it was seen down.
 * Its tap goes too: a stopped VM holds nothing on the host but its row, directory and address.
 */
export const recordStopped = Effect.fn("vm.recordStopped")(function* (vm: Vm, lastExit: string) {
  const stopped = new Vm({
    ...vm,
    state: "stopped",
    pid: null,
    pidStartTime: null,
    controlSocket: null,
    runningAccel: null,
    lastExit,
    stoppedAt: DateTime.formatIso(yield* DateTime.now)
  })
  const store = yield* Store
  yield* store.vms.update(stopped)
  yield* detachVmNetwork(stopped)
  return stopped
})

export const findVm = Effect.fn("vm.find")(function* (name: string) {
  const store = yield* Store
  const row = yield* store.vms.find(name)
  if (Option.isNone(row)) return yield* new VmNotFound({ name, reason: "see banger vm list" })
  return yield* liveVm(row.value, "banger")
})

export const listVms = Effect.gen(function* () {
  const store = yield* Store
  return yield* Effect.forEach(yield* store.vms.list, (vm) => liveVm(vm, "vm list"))
})
