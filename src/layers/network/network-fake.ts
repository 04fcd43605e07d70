import { Effect, Either } from "effect"
import { NetworkError, NetworkUnavailable } from "../../domain/errors.js"
import type { VmNetwork } from "../../domain/network.js"
import { type Ipv4Cidr, parseCidr } from "./address.js"
import type { NetworkShape } from "./network.js"

export interface NetworkFake {
  readonly network: NetworkShape
  /** Taps that exist, by name. */
  readonly taps: Map<string, VmNetwork | undefined>
  /** VMs using outbound access. */
  readonly users: Set<string>
  /** Whether banger's table would be loaded. */
  table: boolean
  /** Set to make `checkAvailable` fail with this reason. */
  unavailable: string | undefined
  /** Set to make the next attaches fail (after nothing was made). */
  failAttach: string | undefined
  readonly removed: Array<string>
}

/** Taps and the table as in-memory records, for pipeline unit tests; runs nothing. */
export const makeNetworkFake = (pool: Ipv4Cidr = Either.getOrThrow(parseCidr("172.30.0.0/16"))): NetworkFake => {
  const fake: NetworkFake = {
    taps: new Map(),
    users: new Set(),
    table: false,
    unavailable: undefined,
    failAttach: undefined,
    removed: [],
    network: {
      pool: Effect.succeed(pool),
      checkAvailable: Effect.suspend(() =>
        fake.unavailable === undefined ? Effect.void : Effect.fail(new NetworkUnavailable({ reason: fake.unavailable }))
      ),
      attach: (vmId, network) =>
        Effect.suspend(() => {
          if (fake.failAttach !== undefined) return Effect.fail(new NetworkError({ reason: fake.failAttach }))
          fake.taps.set(network.tap, network)
          fake.users.add(vmId)
          fake.table = true
          return Effect.void
        }),
      detach: (vmId, network) =>
        Effect.sync(() => {
          if (fake.taps.delete(network.tap)) fake.removed.push(network.tap)
          fake.users.delete(vmId)
          if (fake.users.size === 0) fake.table = false
        }),
      listTaps: Effect.sync(() => [...fake.taps.keys()]),
      removeTap: (tap) =>
        Effect.sync(() => {
          if (fake.taps.delete(tap)) fake.removed.push(tap)
        }),
      adopt: (vmIds) =>
        Effect.sync(() => {
          fake.users.clear()
          for (const id of vmIds) fake.users.add(id)
          fake.table = fake.users.size > 0
        }),
      resolvers: Effect.succeed(["192.0.2.53"])
    }
  }
  return fake
}
