import { RpcSerialization, RpcServer } from "@effect/rpc"
import { Clock, type Duration, Effect, Layer } from "effect"
import { builtinCatalogPath } from "../app/catalog-path.js"
import type { Ipv4Cidr } from "../layers/network/address.js"
import { OperationStore } from "../layers/store/operation-store.js"
import { DefaultCatalogPath } from "../pipelines/catalog/load-catalog.js"
import { BangerApi } from "../rpc/api.js"
import { DaemonInfo } from "../rpc/schemas.js"
import { VERSION } from "../version.js"
import type { WebConfig } from "../web/address.js"
import { webLayer } from "../web/server.js"
import { WebSessions } from "../web/sessions.js"
import {
  DaemonIdentity,
  type HandlerServices,
  handlersLayer,
  type KernelPullFunction,
  type PullFunction
} from "./handlers.js"
import { acquireDaemonLock } from "./lock.js"
import { NameReservations } from "./name-reservations.js"
import { Operations } from "./operations.js"
import { layerPeerProtocol } from "./peer-protocol.js"
import { listenUnixSocket } from "./socket.js"

export interface TransferSettings {
  readonly idleTimeout?: Duration.DurationInput | undefined
  readonly stallBudget?: Duration.DurationInput | undefined
  readonly resolveTimeout?: Duration.DurationInput | undefined
}

export interface DaemonConfig {
  readonly stateDir: string
  readonly socket: string
  /** Group allowed to use the socket (0660); owner only (0600) when absent. */
  readonly group?: string | undefined
  /** How long finished operations are kept before the pruner drops them. */
  readonly operationTtl: Duration.DurationInput
  readonly pruneEvery?: Duration.DurationInput | undefined
  /** The catalog used when a request names none; default the one shipped in the package. */
  readonly catalog?: string | undefined
  /** `--web`: also serve the web UI there, over the same handlers. */
  readonly web?: WebConfig | undefined
  /** VMs' address pool (`--subnet`); chosen from the host's routes when absent. */
  readonly subnet?: Ipv4Cidr | undefined
  /** `--idle-timeout`, `--stall-budget`, `--resolve-timeout`: the registry client's patience. */
  readonly transfer?: TransferSettings | undefined
}

/** What the daemon itself needs of the pipeline services (handlers need more, through `R`). */
export type DaemonServices = Exclude<HandlerServices, DefaultCatalogPath>

/**
 * The whole daemon as one layer, started in this order: the state-dir lock; the services (which
 * migrate and run the recovery sweep: `appLayer`); operations left running by a dead daemon are
 * marked failed; then the socket is served. Closing it interrupts the running operations first
 * (their rollback runs and their final state is recorded), then stops serving, then closes the store.
 */
export const daemonLayer = <R, E>(
  config: DaemonConfig,
  services: Layer.Layer<R | DaemonServices, E>,
  pull: PullFunction<NoInfer<R> | DaemonServices | DefaultCatalogPath>,
  pullKernel: KernelPullFunction<NoInfer<R> | DaemonServices | DefaultCatalogPath>
) => {
  const lock = Layer.scopedDiscard(acquireDaemonLock(config.stateDir))
  const identity = Layer.effect(
    DaemonIdentity,
    Effect.map(
      Clock.currentTimeMillis,
      (now) =>
        new DaemonInfo({
          pid: process.pid,
          version: VERSION,
          stateDir: config.stateDir,
          socket: config.socket,
          startedAt: new Date(now).toISOString()
        })
    )
  )
  const operations = Operations.layer({ ttl: config.operationTtl, pruneEvery: config.pruneEvery }).pipe(
    Layer.provide(OperationStore.layer)
  )
  const catalog = DefaultCatalogPath.layer(config.catalog ?? builtinCatalogPath())
  const sessions = WebSessions.layer(config.web ?? null)
  const core = Layer.mergeAll(operations, NameReservations.layer, identity, catalog, sessions).pipe(
    Layer.provideMerge(services),
    Layer.provide(lock)
  )
  // flatMap: nothing listens before the lock is held and the state dir is recovered.
  return Layer.flatMap(core, (context) => {
    const ready = Layer.succeedContext(context)
    const protocol = layerPeerProtocol.pipe(
      Layer.provide(listenUnixSocket({ path: config.socket, group: config.group })),
      Layer.provide(RpcSerialization.layerNdjson)
    )
    const handlers = handlersLayer(pull, pullKernel).pipe(Layer.provide(ready))
    const server = RpcServer.layer(BangerApi, { disableFatalDefects: true }).pipe(
      Layer.provide(handlers),
      Layer.provide(protocol),
      Layer.provide(ready)
    )
    const web =
      config.web === undefined ? Layer.empty : webLayer(config.web).pipe(Layer.provide(handlers), Layer.provide(ready))
    // Built last, so closed first: operations end (and are recorded) while clients can still watch.
    const lifecycle = Layer.scopedDiscard(
      Effect.gen(function* () {
        const ops = yield* Operations
        yield* Effect.logInfo(`banger daemon ${VERSION} serving ${config.socket} (state ${config.stateDir})`)
        yield* Effect.addFinalizer(() =>
          Effect.logInfo("stopping: interrupting running operations").pipe(Effect.zipRight(ops.shutdown))
        )
      })
    ).pipe(Layer.provide(ready))
    return lifecycle.pipe(Layer.provide(Layer.merge(server, web)))
  })
}
