import * as fs from "node:fs"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Cause, Effect, Layer, Option } from "effect"
import { collectGarbageNow } from "../daemon/collect-garbage.js"
import type { TransferSettings } from "../daemon/server.js"
import { StoreError } from "../domain/errors.js"
import { BlobCache } from "../layers/blob-cache/blob-cache.js"
import { ClientFiles } from "../layers/client-files/client-files.js"
import { DiskCopy } from "../layers/disk/disk-copy.js"
import { Ext4Tools } from "../layers/ext4/ext4-tools.js"
import { GuestFs } from "../layers/guest/guest-fs.js"
import { HostProbe } from "../layers/host/host-probe.js"
import { HostResources } from "../layers/host/host-resources.js"
import type { Ipv4Cidr } from "../layers/network/address.js"
import { Network } from "../layers/network/network.js"
import { RegistryClient } from "../layers/registry/registry-client.js"
import { RootfsBuilder } from "../layers/rootfs/rootfs-builder.js"
import { Ssh } from "../layers/ssh/ssh.js"
import { StatePaths } from "../layers/state/state-paths.js"
import { Store } from "../layers/store/store.js"
import { ProcessTable } from "../layers/vmm/process-table.js"
import { Vmm } from "../layers/vmm/vmm.js"
import { DefaultCatalogPath } from "../pipelines/catalog/load-catalog.js"
import { LocalArtifacts } from "../pipelines/doctor/local-artifacts.js"
import { PublishLock } from "../pipelines/pull/publish.js"
import { recoverState } from "../pipelines/pull/recover.js"
import { reconcileVms } from "../pipelines/vm/reconcile.js"
import { builtinCatalogPath } from "./catalog-path.js"

/**
 * Every real service banger needs for one state dir. Building it opens (and migrates) the
 * database and runs the recovery sweep, so every start of banger cleans up after a crash.
 */
export interface AppOptions {
  /** `banger daemon --subnet`: VMs' address pool; chosen from the host's routes when absent. */
  readonly subnet?: Ipv4Cidr | undefined
  /** `banger daemon --idle-timeout/--stall-budget/--resolve-timeout`: the registry client's patience. */
  readonly transfer?: TransferSettings | undefined
}

export const appLayer = (stateDir: string, options: AppOptions = {}) => {
  const paths = StatePaths.layer(stateDir)
  const store = Store.layer.pipe(Layer.provide(paths))
  // node:http rather than undici: undici's HTTP parser is WebAssembly, which every fresh daemon
  // compiled (twice, as V8 tiered it up) during its first download (bench image, A/B: cold pull
  // 2.39 -> 2.33 s; the same registry tests pass on both).
  const registry = RegistryClient.layerFromEnv(options.transfer ?? {}).pipe(Layer.provide(NodeHttpClient.layer))
  const blobCache = BlobCache.layer.pipe(Layer.provide(registry), Layer.provide(paths))
  const rootfs = RootfsBuilder.layerWith({ collectGarbage: collectGarbageNow }).pipe(Layer.provide(paths))
  const vmm = Vmm.layerFromState.pipe(Layer.provide(paths))
  const ssh = Ssh.layer.pipe(Layer.provide(paths))
  const network = Network.layerFromState(options.subnet).pipe(Layer.provide(paths))
  const services = Layer.mergeAll(
    paths,
    store,
    registry,
    blobCache,
    rootfs,
    Ext4Tools.layer,
    PublishLock.layer,
    DiskCopy.layer,
    vmm,
    network,
    HostProbe.layer,
    ClientFiles.layer,
    HostResources.layer,
    GuestFs.layer,
    ProcessTable.layer,
    ssh
  )
  // Pull leftovers first, then VMs: rows against live VMM processes, and what no row knows.
  const recovery = Layer.effectDiscard(Effect.zipRight(recoverState(), reconcileVms())).pipe(Layer.provide(services))
  return Layer.merge(services, recovery)
}

/**
 * What `banger doctor` needs when no daemon answers, without the side effects of `appLayer` (no
 * recovery sweep, no state dir created): the database is opened only when it exists, and one
 * that cannot be opened makes the checks that read it say so.
 */
const causeMessage = (cause: Cause.Cause<unknown>) => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}

export const doctorLayer = (stateDir: string) => {
  const paths = StatePaths.layer(stateDir)
  const local = Layer.unwrapEffect(
    Effect.map(StatePaths, (statePaths) =>
      fs.existsSync(statePaths.database)
        ? LocalArtifacts.fromStore.pipe(
            Layer.provide(Store.layer),
            Layer.catchAllCause((cause) => {
              const failure = Cause.failureOption(cause)
              return LocalArtifacts.unreadable(
                Option.isSome(failure) ? failure.value : new StoreError({ reason: causeMessage(cause) })
              )
            })
          )
        : LocalArtifacts.empty
    )
  ).pipe(Layer.provide(paths))
  return Layer.mergeAll(
    paths,
    local,
    HostProbe.layer,
    DefaultCatalogPath.layer(builtinCatalogPath()),
    NodeContext.layer
  ).pipe(Layer.provide(NodeContext.layer))
}
