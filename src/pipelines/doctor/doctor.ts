import { Effect } from "effect"
import { loadCatalog } from "../catalog/load-catalog.js"
import { checkBusybox } from "./busybox.js"
import { checkCatalog, checkDefaultImage, checkDefaultKernel } from "./catalog.js"
import { checkDaemon, type DaemonObservation } from "./daemon.js"
import { checkFirecracker, checkQemu } from "./hypervisors.js"
import { checkKvm } from "./kvm.js"
import { checkIpForward, checkNftTable, checkTun } from "./network.js"
import { checkFreeSpace, checkReflink, checkStateDir } from "./state-dir.js"
import { checkE2fsprogs, checkIgzip, checkIp, checkNft, checkOpenssh, checkOpenssl, checkZstd } from "./tools.js"

export type { DaemonObservation } from "./daemon.js"

export interface DoctorRequest {
  /** The catalog to check instead of the default one (a client's --catalog). */
  readonly catalog?: string | undefined
  readonly daemon: DaemonObservation
}

/**
 * Every check of `banger doctor`, in the order it prints them: hypervisors, the tools banger runs,
 * networking, the state dir, the daemon, the catalog and its defaults. Checks never fail: each
 * problem is a result with its fix. A few run at once (most wait on a child process).
 */
export const runDoctor = Effect.fn("doctor")(function* (request: DoctorRequest) {
  const catalog = yield* Effect.either(loadCatalog(request.catalog))
  return yield* Effect.all(
    [
      checkKvm,
      checkFirecracker,
      checkQemu,
      checkE2fsprogs,
      checkZstd,
      checkIgzip,
      checkOpenssl,
      checkBusybox,
      checkOpenssh,
      checkTun,
      checkIp,
      checkNft,
      checkIpForward,
      checkNftTable,
      checkStateDir,
      checkFreeSpace,
      checkReflink,
      checkDaemon(request.daemon),
      checkCatalog(catalog),
      checkDefaultKernel(catalog),
      checkDefaultImage(catalog)
    ],
    { concurrency: 4 }
  )
})
