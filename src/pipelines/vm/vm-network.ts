import { Effect, Exit } from "effect"
import type { Vm } from "../../domain/vm.js"
import { formatCidr, poolRange, vmNetworkAt } from "../../layers/network/address.js"
import { Network } from "../../layers/network/network.js"
import { Store } from "../../layers/store/store.js"

/**
 * The VM's /30, leased in the store; the lease is given back if the caller's scope fails (a create
 * that does not finish), kept when it succeeds (the VM row then holds the address until delete).
 */
export const leaseVmNetwork = Effect.fn("vm.network.lease")(function* (vmId: string) {
  const store = yield* Store
  const network = yield* Network
  const pool = yield* network.pool
  const { start, end } = poolRange(pool)
  const base = yield* Effect.acquireRelease(
    store.addresses.allocate(vmId, { start, end, label: formatCidr(pool) }),
    (_, exit) => (Exit.isFailure(exit) ? store.addresses.release(vmId).pipe(Effect.ignoreLogged) : Effect.void)
  )
  return vmNetworkAt(vmId, base)
})

/** The VM's tap up and outbound access on, undone if the caller's scope fails (a boot that does not finish). */
export const attachVmNetwork = Effect.fn("vm.network.attach")(function* (vm: Pick<Vm, "id" | "network">) {
  const network = yield* Network
  const vmNetwork = vm.network
  if (vmNetwork === null) return
  yield* Effect.acquireRelease(network.attach(vm.id, vmNetwork), (_, exit) =>
    Exit.isFailure(exit) ? network.detach(vm.id, vmNetwork).pipe(Effect.ignoreLogged) : Effect.void
  )
})

/**
 * The VM's tap removed, and outbound access off if it was the last VM running with a network.
 * Called whenever a VM is found or made stopped: a failure here is logged, not the stop's.
 */
export const detachVmNetwork = Effect.fn("vm.network.detach")(function* (vm: Vm) {
  const network = yield* Network
  if (vm.network === null) return
  yield* network.detach(vm.id, vm.network).pipe(Effect.ignoreLogged)
})
