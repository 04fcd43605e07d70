import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import type { Vm } from "../../domain/vm.js"
import { Network } from "../../layers/network/network.js"
import { StatePaths } from "../../layers/state/state-paths.js"
import { Store } from "../../layers/store/store.js"
import { API_SOCKET_FILE } from "../../layers/vmm/firecracker/firecracker-vmm.js"
import { ProcessTable } from "../../layers/vmm/process-table.js"
import { QMP_SOCKET_FILE } from "../../layers/vmm/qemu/qemu-vmm.js"
import { liveVm } from "./live-state.js"

/**
 * The VM directory a VMM argv entry names as its control socket (`--api-sock <dir>/firecracker.sock`,
 * `-qmp unix:<dir>/qmp.sock,…`): what marks a process as a VMM banger started, as opposed to, say,
 * someone's `tail -f` of a console log.
 */
const vmDirOfControlSocket = (vms: string, arg: string): string | undefined => {
  const match = new RegExp(`${escapeRegExp(vms)}/([0-9a-f]+)/(${API_SOCKET_FILE}|${QMP_SOCKET_FILE})(,|$)`).exec(arg)
  return match ? path.join(vms, match[1]!) : undefined
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/**
 * At daemon start: rows against live processes, then what no row knows. A VM recorded as running
 * whose VMM died is recorded as stopped; a VMM process that names a VM directory no row owns (a
 * create the daemon died in) is killed, and such directories are removed. Only processes whose
 * command line names a path under `<state>/vms/` can match: never anything banger did not start.
 * Then the network: taps of banger's naming that no running VM has are removed, address leases no
 * row holds are freed, and outbound access stays on only if a VM with a network still runs.
 */
export const reconcileVms = Effect.fn("vm.reconcile")(function* () {
  const store = yield* Store
  const paths = yield* StatePaths
  const fs = yield* FileSystem.FileSystem
  const table = yield* ProcessTable
  const rows = yield* Effect.forEach(yield* store.vms.list, (vm) => liveVm(vm, "the daemon at start"))
  const owned = new Set(rows.map((vm) => vm.dir))
  const runningPids = new Set(rows.flatMap((vm) => (vm.pid === null ? [] : [vm.pid])))

  for (const orphan of yield* table.naming(paths.vms)) {
    if (runningPids.has(orphan.pid)) continue
    const dir = orphan.argv.map((arg) => vmDirOfControlSocket(paths.vms, arg)).find((found) => found !== undefined)
    if (dir === undefined || owned.has(dir)) continue
    yield* Effect.logWarning(`stopping VMM ${orphan.pid}: it runs a VM directory no VM row knows (${dir})`)
    yield* table.terminate(orphan)
  }

  const dirs = yield* fs.readDirectory(paths.vms).pipe(Effect.orElseSucceed(() => [] as Array<string>))
  for (const name of dirs) {
    const dir = path.join(paths.vms, name)
    if (owned.has(dir)) continue
    yield* Effect.logWarning(`removing ${dir}: no VM row knows it (a create the daemon did not finish)`)
    yield* fs.remove(dir, { recursive: true, force: true }).pipe(Effect.ignoreLogged)
  }
  yield* reconcileNetwork(rows)
  return rows
})

const reconcileNetwork = Effect.fn("vm.reconcileNetwork")(function* (rows: ReadonlyArray<Vm>) {
  const store = yield* Store
  const network = yield* Network
  const running = rows.filter((vm) => vm.state === "running" && vm.network !== null)
  const inUse = new Set(running.map((vm) => vm.network!.tap))
  const taps = yield* network.listTaps.pipe(Effect.orElseSucceed(() => [] as ReadonlyArray<string>))
  for (const tap of taps) {
    if (inUse.has(tap)) continue
    yield* Effect.logWarning(`removing tap ${tap}: no running VM uses it`)
    yield* network.removeTap(tap).pipe(Effect.ignoreLogged)
  }
  for (const vmId of yield* store.addresses.releaseOrphans) {
    yield* Effect.logWarning(`freed the address of VM ${vmId}: no VM row holds it (a create the daemon did not finish)`)
  }
  yield* network.adopt(running.map((vm) => vm.id)).pipe(Effect.ignoreLogged)
})
