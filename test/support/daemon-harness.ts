/**
 * Daemon tests: a temp state dir, the daemon's services over it (real SQLite store and state
 * paths, no registry), and a fake pull that walks the real staging → progress → publish path
 * slowly enough to watch and cancel.
 */

import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import { RpcTest } from "@effect/rpc"
import { Context, Duration, Effect, Exit, Layer, Scope } from "effect"
import { DaemonIdentity, type HandlerServices, handlersLayer, type PullFunction } from "../../src/daemon/handlers.js"
import { NameReservations } from "../../src/daemon/name-reservations.js"
import { Operations } from "../../src/daemon/operations.js"
import { daemonLayer } from "../../src/daemon/server.js"
import { Image, Kernel } from "../../src/domain/image.js"
import { BlobCache } from "../../src/layers/blob-cache/blob-cache.js"
import { ClientFiles } from "../../src/layers/client-files/client-files.js"
import { DiskCopy } from "../../src/layers/disk/disk-copy.js"
import { Ext4Tools } from "../../src/layers/ext4/ext4-tools.js"
import { GuestFs } from "../../src/layers/guest/guest-fs.js"
import { HostProbe } from "../../src/layers/host/host-probe.js"
import { HostResources } from "../../src/layers/host/host-resources.js"
import { Network } from "../../src/layers/network/network.js"
import { RegistryClient } from "../../src/layers/registry/registry-client.js"
import { RootfsBuilder } from "../../src/layers/rootfs/rootfs-builder.js"
import { Ssh } from "../../src/layers/ssh/ssh.js"
import { StatePaths } from "../../src/layers/state/state-paths.js"
import { OperationStore } from "../../src/layers/store/operation-store.js"
import { Store } from "../../src/layers/store/store.js"
import { ProcessTable } from "../../src/layers/vmm/process-table.js"
import { Vmm } from "../../src/layers/vmm/vmm.js"
import { DefaultCatalogPath } from "../../src/pipelines/catalog/load-catalog.js"
import { acquireKernelStaging, publishKernel } from "../../src/pipelines/kernel/kernel-staging.js"
import type { KernelPullRequest } from "../../src/pipelines/kernel/pull-kernel.js"
import { PullProgress, reportPhase, reportStage } from "../../src/pipelines/pull/progress.js"
import { PublishLock, publishImage } from "../../src/pipelines/pull/publish.js"
import type { PullRequest } from "../../src/pipelines/pull/pull.js"
import { recoverState } from "../../src/pipelines/pull/recover.js"
import { acquireStaging } from "../../src/pipelines/pull/staging.js"
import { BangerApi } from "../../src/rpc/api.js"
import { BangerClient } from "../../src/rpc/client.js"
import { type BangerError, DaemonInfo } from "../../src/rpc/schemas.js"
import { FAKE_KERNEL_BYTES } from "./fake-kernel.js"

/** A short temp dir (Unix socket paths are limited to 107 bytes), removed with the scope. */
export const tempDir = (prefix = "bgd-") =>
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), prefix))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

/** StatePaths, Store, PublishLock, the real HostProbe and the Node platform over `stateDir`, swept on build like appLayer. */
export const testServices = (stateDir: string) => {
  const paths = StatePaths.layer(stateDir)
  const services = Layer.mergeAll(
    paths,
    Store.layer.pipe(Layer.provide(paths)),
    PublishLock.layer,
    DiskCopy.layer.pipe(Layer.provide(NodeContext.layer)),
    // Real but idle unless a test pulls for real (a register's --kernel-ref of a catalog kernel).
    RegistryClient.layer.pipe(Layer.provide(NodeHttpClient.layer)),
    RootfsBuilder.layer.pipe(Layer.provide(paths)),
    Ext4Tools.layer.pipe(Layer.provide(NodeContext.layer)),
    Vmm.layerFromState.pipe(Layer.provide(paths)),
    HostResources.layer,
    GuestFs.layer.pipe(Layer.provide(NodeContext.layer)),
    ProcessTable.layer,
    Ssh.layer.pipe(Layer.provide(paths)),
    // In memory: these daemons run in the host's network namespace, which tests never change.
    Network.layerTest(),
    HostProbe.layer.pipe(Layer.provide(NodeContext.layer)),
    ClientFiles.layer,
    NodeContext.layer
  )
  const withCache = Layer.merge(services, BlobCache.layer.pipe(Layer.provide(services)))
  return Layer.merge(withCache, Layer.effectDiscard(recoverState()).pipe(Layer.provide(withCache)))
}

export interface FakePullOptions {
  readonly layers?: number
  readonly layerBytes?: number
  /** Progress steps per layer; each waits `stepDelay`. */
  readonly steps?: number
  readonly stepDelay?: Duration.DurationInput
  /** Fail in the mkfs stage with this error (after staging exists). */
  readonly failWith?: BangerError
  /** Counts the pulls inside their fetch stage at once: `max` is the most there ever were. */
  readonly overlap?: { current: number; max: number }
}

/**
 * A pull that takes `layers × steps × stepDelay`: real staging dir (with lease) and real publish,
 * so cancellation and crashes exercise the same rollback as the real pipeline.
 */
export const fakePull =
  (options: FakePullOptions = {}) =>
  (request: PullRequest) =>
    Effect.gen(function* () {
      const paths = yield* StatePaths
      const progress = yield* PullProgress
      const layers = options.layers ?? 2
      const layerBytes = options.layerBytes ?? 1000
      const steps = options.steps ?? 5
      const delay = Duration.decode(options.stepDelay ?? "20 millis")
      const name = request.name ?? "fake"
      yield* reportStage("resolve")
      return yield* Effect.scoped(
        Effect.gen(function* () {
          const staging = yield* acquireStaging()
          yield* reportStage("fetch")
          const overlap = options.overlap
          if (overlap) overlap.max = Math.max(overlap.max, ++overlap.current)
          for (let index = 0; index < layers; index++) {
            for (let step = 1; step <= steps; step++) {
              yield* Effect.sleep(delay)
              yield* progress.report({
                _tag: "LayerProgress",
                index,
                count: layers,
                digest: `sha256:${String(index).repeat(64)}`,
                bytesDone: Math.round((layerBytes * step) / steps),
                bytesTotal: layerBytes,
                cached: false
              })
            }
          }
          if (overlap) overlap.current--
          yield* reportStage("write-ext4")
          if (options.failWith) return yield* Effect.fail(options.failWith)
          const rootfs = path.join(staging.dir, "rootfs.ext4")
          fs.writeFileSync(rootfs, "ext4 placeholder")
          yield* reportStage("publish")
          const finalDir = paths.imageDir(staging.id)
          const image = new Image({
            id: staging.id,
            name,
            ref: `example.test/${request.reference}`,
            manifestDigest: `sha256:${"a".repeat(64)}`,
            platform: "linux/amd64",
            managed: true,
            rootfs: path.join(finalDir, "rootfs.ext4"),
            kernel: path.join(finalDir, "kernel"),
            initrd: null,
            modules: null,
            sizeBytes: 16,
            createdAt: new Date().toISOString()
          })
          return yield* publishImage(staging.dir, finalDir, image)
        })
      )
    })

/**
 * A kernel pull that needs no registry: stages a tiny ELF-headed kernel file and publishes it
 * through the real kernel staging and publish steps.
 */
export const fakeKernelPull = (request: KernelPullRequest) =>
  Effect.gen(function* () {
    const paths = yield* StatePaths
    const name = request.name ?? "fake-kernel"
    yield* reportPhase("kernel", name)
    yield* reportStage("resolve")
    return yield* Effect.scoped(
      Effect.gen(function* () {
        const staging = yield* acquireKernelStaging()
        fs.writeFileSync(path.join(staging, "kernel"), Buffer.from([0x7f, 0x45, 0x4c, 0x46]))
        yield* reportStage("publish")
        const kernel = new Kernel({
          name,
          kernel: path.join(paths.kernelDir(name), "kernel"),
          initrd: null,
          modules: null,
          createdAt: new Date().toISOString(),
          ref: `example.test/${request.reference}`,
          format: "elf"
        })
        return yield* publishKernel(staging, kernel)
      })
    )
  })

/** A kernel file the pull payloads can point at (`kernel: { _tag: "Paths", kernel }`). */
export const writeKernel = (dir: string) => {
  const kernel = path.join(dir, "vmlinuz")
  fs.writeFileSync(kernel, FAKE_KERNEL_BYTES)
  return kernel
}

/** Entries of a directory, [] when it does not exist. */
export const listDir = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir) : [])

export interface InProcessDaemon {
  readonly stateDir: string
  readonly socket: string
  /** Stops the daemon as SIGTERM would: operations interrupted, socket removed, store closed. */
  readonly stop: Effect.Effect<void>
}

/** Runs the daemon layer in this process over `stateDir`, until `stop` or the enclosing scope ends. */
export const startInProcessDaemon = (
  stateDir: string,
  options: FakePullOptions & {
    readonly socket?: string
    readonly group?: string
    readonly operationTtl?: Duration.DurationInput
    readonly pruneEvery?: Duration.DurationInput
  } = {}
) =>
  Effect.gen(function* () {
    const socket = options.socket ?? path.join(stateDir, "banger.sock")
    const layer = daemonLayer(
      {
        stateDir,
        socket,
        group: options.group,
        operationTtl: options.operationTtl ?? "1 hour",
        pruneEvery: options.pruneEvery,
        // No catalog: plain names like "debian" stay references, whatever the built-in catalog lists.
        catalog: path.join(stateDir, "no-catalog.json")
      },
      testServices(stateDir),
      fakePull(options),
      fakeKernelPull
    )
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    yield* Layer.buildWithScope(layer, scope)
    return { stateDir, socket, stop: Scope.close(scope, Exit.void) } satisfies InProcessDaemon
  })

/** A client connected to `socket`, closed with the enclosing scope. */
export const connect = (socket: string) =>
  Effect.map(Layer.build(BangerClient.layer({ socket })), Context.get(BangerClient))

/** The daemon's handlers without a socket: `RpcTest.makeClient(BangerApi)` over them, for handler tests. */
export const handlerClient = <R>(
  stateDir: string,
  services: Layer.Layer<R | Exclude<HandlerServices, DefaultCatalogPath>, unknown>,
  pull: PullFunction<NoInfer<R> | HandlerServices>,
  options: {
    readonly operationTtl?: Duration.DurationInput
    readonly pruneEvery?: Duration.DurationInput
    /** The daemon's default catalog (a path that does not exist unless given). */
    readonly catalog?: string
  } = {}
) =>
  Effect.gen(function* () {
    const identity = Layer.succeed(
      DaemonIdentity,
      new DaemonInfo({ pid: process.pid, version: "test", stateDir, socket: "-", startedAt: new Date().toISOString() })
    )
    const operations = Operations.layer({
      ttl: options.operationTtl ?? "1 hour",
      pruneEvery: options.pruneEvery
    }).pipe(Layer.provide(OperationStore.layer))
    const catalog = DefaultCatalogPath.layer(options.catalog ?? path.join(stateDir, "no-catalog.json"))
    const core = Layer.mergeAll(operations, NameReservations.layer, identity, catalog).pipe(
      Layer.provideMerge(services)
    )
    const context = yield* Layer.build(handlersLayer(pull, fakeKernelPull).pipe(Layer.provideMerge(core))).pipe(
      Effect.orDie
    )
    const client = yield* RpcTest.makeClient(BangerApi).pipe(Effect.provide(context))
    return { client, operations: Context.get(context, Operations) }
  })
