import { Effect, Option } from "effect"
import { InvalidName, VmNameTaken, VmRefused } from "../../domain/errors.js"
import { HostResources } from "../../layers/host/host-resources.js"
import { Store } from "../../layers/store/store.js"
import { validateImageName } from "../pull/parse-reference.js"
import { parseDiskSize } from "./work-disk.js"

export const DEFAULT_CPUS = 2
export const DEFAULT_MEMORY_MIB = 1024
/** Below this a distribution kernel and its initrd do not get to userspace. */
export const MIN_MEMORY_MIB = 128
/** What the host keeps for itself and the VMM's own overhead. */
const HOST_RESERVE_MIB = 256

export interface VmSizing {
  readonly cpus?: number | undefined
  readonly memoryMib?: number | undefined
  readonly diskSize?: string | undefined
}

/** Checks cpus and memory against the host, and parses the disk size; all before any work. */
export const validateSizing = Effect.fn("vm.validateSizing")(function* (name: string, sizing: VmSizing) {
  const host = yield* HostResources
  const refuse = (reason: string) => new VmRefused({ name, reason })
  const cpus = sizing.cpus ?? Math.min(DEFAULT_CPUS, host.cpuCount)
  if (!Number.isInteger(cpus) || cpus < 1) return yield* refuse(`--cpus must be a whole number from 1 (got ${cpus})`)
  if (cpus > host.cpuCount) return yield* refuse(`--cpus ${cpus} is more than this host's ${host.cpuCount} CPUs`)
  const hostMib = Math.floor(host.memoryBytes / 2 ** 20)
  const memoryMib = sizing.memoryMib ?? Math.min(DEFAULT_MEMORY_MIB, hostMib - HOST_RESERVE_MIB)
  if (!Number.isInteger(memoryMib) || memoryMib < MIN_MEMORY_MIB) {
    return yield* refuse(`--memory must be at least ${MIN_MEMORY_MIB} MiB (got ${memoryMib})`)
  }
  if (memoryMib > hostMib - HOST_RESERVE_MIB) {
    return yield* refuse(
      `--memory ${memoryMib} MiB is more than this host can give (${hostMib} MiB in all, ${HOST_RESERVE_MIB} MiB kept for the host)`
    )
  }
  const diskBytes = yield* parseDiskSize(sizing.diskSize)
  return { cpus, memoryMib, diskBytes }
})

/** Name rules as for images; a name recorded already is refused before anything is made. */
export const validateVmName = Effect.fn("vm.validateVmName")(function* (name: string) {
  yield* validateImageName(name).pipe(
    Effect.mapError(
      (error) => new InvalidName({ name, reason: error.reason.replace("names become", "VM names become") })
    )
  )
  const store = yield* Store
  if (Option.isSome(yield* store.vms.find(name))) {
    return yield* new VmNameTaken({ name, reason: "pick another name or delete it first (banger vm delete)" })
  }
  return name
})
