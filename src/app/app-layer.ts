import { NodeHttpClient } from "@effect/platform-node"
import { Layer } from "effect"
import { BlobCache } from "../layers/blob-cache/blob-cache.js"
import { DiskCopy } from "../layers/disk/disk-copy.js"
import { Ext4Tools } from "../layers/ext4/ext4-tools.js"
import { RegistryClient } from "../layers/registry/registry-client.js"
import { RootfsBuilder } from "../layers/rootfs/rootfs-builder.js"
import { StatePaths } from "../layers/state/state-paths.js"
import { Store } from "../layers/store/store.js"
import { Vmm } from "../layers/vmm/vmm.js"
import { PublishLock } from "../pipelines/pull/publish.js"
import { recoverState } from "../pipelines/pull/recover.js"

/**
 * Every real service banger needs for one state dir. Building it opens (and migrates) the
 * database and runs the recovery sweep, so every start of banger cleans up after a crash.
 */
export const appLayer = (stateDir: string) => {
  const paths = StatePaths.layer(stateDir)
  const store = Store.layer.pipe(Layer.provide(paths))
  // node:http rather than undici: undici's HTTP parser is WebAssembly, which every fresh daemon
  // compiled (twice, as V8 tiered it up) during its first download (bench image, A/B: cold pull
  // 2.39 -> 2.33 s; the same registry tests pass on both).
  const registry = RegistryClient.layer.pipe(Layer.provide(NodeHttpClient.layer))
  const blobCache = BlobCache.layer.pipe(Layer.provide(registry), Layer.provide(paths))
  const rootfs = RootfsBuilder.layer.pipe(Layer.provide(paths))
  const vmm = Vmm.layerFromState.pipe(Layer.provide(paths))
  const services = Layer.mergeAll(
    paths,
    store,
    registry,
    blobCache,
    rootfs,
    Ext4Tools.layer,
    PublishLock.layer,
    DiskCopy.layer,
    vmm
  )
  const recovery = Layer.effectDiscard(recoverState()).pipe(Layer.provide(services))
  return Layer.merge(services, recovery)
}
