import { Clock, DateTime, Effect, Option } from "effect"
import { ImageNotFound, VmRefused } from "../../domain/errors.js"
import type { Image } from "../../domain/image.js"
import type { SshKeyFile } from "../../domain/ssh.js"
import { Vm } from "../../domain/vm.js"
import type { AccelRequest } from "../../domain/vmm.js"
import { GUEST_INIT } from "../../layers/guest/init/init-script.js"
import { Network } from "../../layers/network/network.js"
import { Store } from "../../layers/store/store.js"
import { Vmm } from "../../layers/vmm/vmm.js"
import { loadCatalog } from "../catalog/load-catalog.js"
import { inspectKernelFile, type KernelFileInfo } from "../kernel/inspect-kernel.js"
import { reportPhase, reportStage } from "../pull/progress.js"
import { pullImage } from "../pull/pull.js"
import { bootVm, elapsedMs } from "./boot.js"
import { chooseVmm, type VmmChoice } from "./choose-vmm.js"
import { configureGuest, readGuestAhead } from "./configure-guest.js"
import { prepareGuestSsh, validateSshKeys } from "./guest-ssh.js"
import { kernelIpAutoconfig } from "./kernel-ip-config.js"
import { type VmSizing, validateSizing, validateVmName } from "./validate.js"
import { acquireVmDir, newVmId } from "./vm-dir.js"
import { attachVmNetwork, leaseVmNetwork } from "./vm-network.js"
import { makeWorkDisk } from "./work-disk.js"

export interface CreateVmRequest extends VmSizing {
  readonly name: string
  /** A local image, else a catalog image (pulled on first use); default the catalog's default. */
  readonly image?: string | undefined
  readonly vmm?: VmmChoice | undefined
  readonly accel?: AccelRequest | undefined
  /** False for `--no-start`: the VM is made, configured and recorded stopped. */
  readonly start: boolean
  readonly catalog?: string | undefined
  /** `--ssh-key` files: their keys may log in as root too. */
  readonly sshKeys?: ReadonlyArray<SshKeyFile> | undefined
  /** False for `--no-network`: no tap, no address, no NAT. */
  readonly network?: boolean | undefined
}

/** The name of the image a VM is made from: the one asked for, else the catalog's default. */
export const vmImageName = (requested: string | undefined, catalog?: string) =>
  requested === undefined
    ? Effect.map(loadCatalog(catalog), (loaded) => loaded.defaultImage.name)
    : Effect.succeed(requested)

/**
 * The image a VM is made from: local by name, else the catalog's entry of that name, pulled here
 * (its progress is this operation's, as an "image" phase after its kernel's). Anything else is not
 * guessed at as a registry reference.
 */
export const resolveVmImage = Effect.fn("vm.resolveImage")(function* (requested: string | undefined, catalog?: string) {
  const store = yield* Store
  const name = yield* vmImageName(requested, catalog)
  const local = yield* store.images.find(name)
  if (Option.isSome(local)) return { image: local.value, pulled: false }
  const entry = (yield* loadCatalog(catalog)).findImage(name)
  if (entry === undefined) {
    return yield* new ImageNotFound({
      name,
      reason: "not a local image nor a catalog image (pull it first with banger image pull, or see banger catalog list)"
    })
  }
  const image = yield* pullImage({ reference: entry.name, catalog, announce: true }).pipe(
    // Another operation (a second create, an image pull) published this image meanwhile: use
    // theirs, as a catalog kernel pull does, rather than fail a create that asked for no name.
    Effect.catchTag("ImageNameTaken", (taken) =>
      Effect.flatMap(store.images.find(entry.name), (theirs) =>
        Option.isSome(theirs) ? Effect.succeed(theirs.value) : Effect.fail(taken)
      )
    )
  )
  return { image, pulled: true }
})

/**
 * `banger vm create`: validate → image → VMM choice → address → work disk → ssh keys → guest
 * configuration → tap → boot → ready (and sshd) → record. Everything made lives in this scope
 * until the row is recorded: any failure or cancel removes the disk and directory, kills the VMM,
 * removes the tap and gives the address back.
 */
export const createVm = Effect.fn("vm.create")(function* (request: CreateVmRequest) {
  const began = yield* Clock.currentTimeNanos
  const store = yield* Store
  const vmm = yield* Vmm
  const name = yield* validateVmName(request.name)
  const sizing = yield* validateSizing(name, request)
  const userKeys = yield* validateSshKeys(request.sshKeys)
  // Before any pull: a daemon that cannot make taps says so at once.
  if (request.network !== false) yield* (yield* Network).checkAvailable
  const { image, pulled } = yield* resolveVmImage(request.image, request.catalog)
  // After a pull's phases, the VM's own stages get theirs, or they would read as the pull's.
  if (pulled) yield* reportPhase("vm", name)
  const kernel = yield* inspectKernelFile(image.kernel)
  const kvm = yield* vmm.kvmStatus
  const decision = chooseVmm(request.vmm, kernel, {
    firecracker: yield* vmm.firecrackerAvailable,
    kvmUsable: kvm.usable
  })
  if (decision._tag === "Refused") return yield* new VmRefused({ name, reason: decision.reason })

  // Once booted and recorded, a cancel must not roll back: the row and the VM stay together.
  return yield* Effect.scoped(
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        const vm = yield* restore(makeVm(name, request, image, kernel, decision, sizing, began, userKeys))
        yield* store.vms.insert(vm)
        return vm
      })
    )
  )
})

/** Everything but the row: the directory, disk and VMM belong to the caller's scope. */
const makeVm = Effect.fn("vm.make")(function* (
  name: string,
  request: CreateVmRequest,
  image: Image,
  kernel: KernelFileInfo,
  decision: { readonly vmm: VmmChoice; readonly reason: string },
  sizing: { readonly cpus: number; readonly memoryMib: number; readonly diskBytes: number },
  began: bigint,
  userKeys: ReadonlyArray<string>
) {
  const id = newVmId()
  const resolvedAt = yield* elapsedMs(began)
  const dir = yield* acquireVmDir(id)
  const vmNetwork = request.network === false ? null : yield* leaseVmNetwork(id)
  yield* reportStage("work-disk")
  const guestOptions = {
    name,
    config: image.runtime,
    modules:
      image.modules === null || kernel.release === undefined
        ? undefined
        : { version: kernel.release, dir: image.modules },
    network:
      vmNetwork === null
        ? undefined
        : {
            network: vmNetwork,
            kernelConfigures: yield* kernelIpAutoconfig(image.kernel, kernel.release),
            resolvers: yield* (yield* Network).resolvers
          }
  }
  // A pulled image's rootfs is the store's, checked clean and never written, so what configuring
  // will read is read from it while it is cloned: the clone has the same inodes and content,
  // unless e2fsck had to go over it. A registered image's file is the user's, and a promoted
  // one was never checked: their clones are read afterwards instead.
  const checkedClean = image.ref !== null
  // The VM's host key (an ssh-keygen run) is made meanwhile too, and, when it is to boot, its tap
  // brought up (a few `ip`/`nft` runs that need nothing of the disk; this scope removes it on failure).
  const networkUp = request.start && vmNetwork !== null
  const [work, early, ssh] = yield* Effect.all(
    [
      makeWorkDisk({
        rootfs: image.rootfs,
        vmDir: dir,
        sizeBytes: sizing.diskBytes,
        checkedClean
      }),
      checkedClean ? readGuestAhead(image.rootfs, guestOptions) : Effect.succeed(undefined),
      prepareGuestSsh({ dir, id, name, userKeys }),
      networkUp ? attachVmNetwork({ id, network: vmNetwork }) : Effect.void
    ],
    { concurrency: "unbounded" }
  )
  const { disk } = work
  const reads = work.repaired ? undefined : early
  const diskAt = yield* elapsedMs(began)
  yield* reportStage("configure")
  const guest = yield* configureGuest({ disk, ...guestOptions, ssh, reads })
  const created = new Vm({
    id,
    name,
    image: image.name,
    imageId: image.id,
    vmm: decision.vmm,
    vmmReason: decision.reason,
    kernelFormat: kernel.format,
    init: guest.init._tag === "BuiltinInit" ? GUEST_INIT : null,
    accel: request.accel ?? "auto",
    cpus: sizing.cpus,
    memoryMib: sizing.memoryMib,
    diskBytes: sizing.diskBytes,
    dir,
    state: "stopped",
    pid: null,
    pidStartTime: null,
    runningAccel: null,
    accelReason: null,
    controlSocket: null,
    lastExit: null,
    createdAt: DateTime.formatIso(yield* DateTime.now),
    startedAt: null,
    stoppedAt: null,
    network: vmNetwork
  })
  const steps = `image resolved at ${resolvedAt} ms, work disk made at ${diskAt} ms, configured at ${yield* elapsedMs(began)} ms`
  if (!request.start) return created
  return yield* bootVm(created, image, {
    began,
    steps,
    networkUp,
    kernelConfigures: guestOptions.network?.kernelConfigures ?? false
  })
})
