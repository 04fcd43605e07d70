import type { FileSystem, Headers } from "@effect/platform"
import { Context, Effect, Option } from "effect"
import { CatalogListing } from "../domain/catalog-listing.js"
import { ImageBusy, WebNotServing } from "../domain/errors.js"
import type { Image, Kernel } from "../domain/image.js"
import { PEER_HEADER } from "../domain/peer.js"
import type { BlobCache } from "../layers/blob-cache/blob-cache.js"
import type { ClientFiles } from "../layers/client-files/client-files.js"
import type { DiskCopy } from "../layers/disk/disk-copy.js"
import type { Ext4Tools } from "../layers/ext4/ext4-tools.js"
import type { HostProbe } from "../layers/host/host-probe.js"
import type { RegistryClient } from "../layers/registry/registry-client.js"
import type { RootfsBuilder } from "../layers/rootfs/rootfs-builder.js"
import type { StatePaths } from "../layers/state/state-paths.js"
import { Store } from "../layers/store/store.js"
import { listCatalog } from "../pipelines/catalog/list-catalog.js"
import type { DefaultCatalogPath } from "../pipelines/catalog/load-catalog.js"
import { runDoctor } from "../pipelines/doctor/doctor.js"
import { LocalArtifacts } from "../pipelines/doctor/local-artifacts.js"
import { deleteImage, listImages, showImage } from "../pipelines/image/manage-images.js"
import { checkPromotable, promoteImage } from "../pipelines/image/promote.js"
import { registerImage } from "../pipelines/image/register.js"
import { inspectRootfs } from "../pipelines/image/source-files.js"
import { ensureKernelNameFree } from "../pipelines/kernel/kernel-staging.js"
import { deleteKernel, listKernels, registerKernel, showKernel } from "../pipelines/kernel/manage-kernels.js"
import { type KernelPullRequest, kernelPullTarget } from "../pipelines/kernel/pull-kernel.js"
import { validateImageName } from "../pipelines/pull/parse-reference.js"
import { PullProgress } from "../pipelines/pull/progress.js"
import { ensureNameFree, type PublishLock } from "../pipelines/pull/publish.js"
import { imagePullTarget, type PullRequest } from "../pipelines/pull/pull.js"
import { checkKernelSource } from "../pipelines/pull/resolve-kernel.js"
import { BangerApi } from "../rpc/api.js"
import type { BangerError, DaemonInfo, KernelPullPayload, PullPayload, RegisterPayload } from "../rpc/schemas.js"
import { WebSessions } from "../web/sessions.js"
import { type ClientPaths, clientPaths } from "./client-paths.js"
import { NameReservations } from "./name-reservations.js"
import { newOperationId, Operations } from "./operations.js"
import { pullTargetName } from "./preflight.js"
import { makeVmHandlers, type VmServices } from "./vm-handlers.js"

/** The pull pipeline as the daemon runs it (`pullImage`; tests pass one over mocked services). */
export type PullFunction<R> = (request: PullRequest) => Effect.Effect<Image, BangerError, R | PullProgress>

/** The kernel pull pipeline as the daemon runs it (`pullKernel`; tests may pass one over mocked services). */
export type KernelPullFunction<R> = (request: KernelPullRequest) => Effect.Effect<Kernel, BangerError, R | PullProgress>

/**
 * What the handlers run pipelines on besides the pull functions' own `R`: the state, and the pull
 * services a register's `--kernel-ref` may need to pull a catalog kernel.
 */
export type HandlerServices =
  | Store
  | StatePaths
  | FileSystem.FileSystem
  | DefaultCatalogPath
  | PublishLock
  | DiskCopy
  | RegistryClient
  | BlobCache
  | RootfsBuilder
  | Ext4Tools
  | VmServices
  | HostProbe
  | ClientFiles

/** Who this daemon is, for `daemon.info`. */
export class DaemonIdentity extends Context.Tag("banger/DaemonIdentity")<DaemonIdentity, DaemonInfo>() {}

/**
 * The API's handlers over the pipelines. A pull is checked and its name reserved here, so bad
 * input and a taken name fail the `image.pull` call itself; the rest runs as an operation.
 */
export const handlersLayer = <R>(pull: PullFunction<R>, pullKernel: KernelPullFunction<R>) =>
  BangerApi.toLayer(
    Effect.gen(function* () {
      const operations = yield* Operations
      const names = yield* NameReservations
      const identity = yield* DaemonIdentity
      const store = yield* Store
      // Absent where no daemon runs (handler tests): web.login then says the UI is not served.
      const web = yield* Effect.serviceOption(WebSessions)
      const context = yield* Effect.context<R | HandlerServices>()

      /**
       * Runs a request with its client paths (client-paths.ts); the copies go when it fails, when
       * `use` says so (`release`, for one that answers at once), or with the operation it begins.
       */
      const withClient = <A, E, R>(headers: Headers.Headers, use: (client: ClientPaths) => Effect.Effect<A, E, R>) =>
        Effect.flatMap(clientPaths(headers), (client) =>
          use(client).pipe(
            Effect.onError(() => client.release),
            Effect.mapError((error) => client.shownAs(error))
          )
        ).pipe(Effect.provide(context))
      const answering = <A, E, R>(headers: Headers.Headers, use: (client: ClientPaths) => Effect.Effect<A, E, R>) =>
        withClient(headers, (client) => Effect.ensuring(use(client), client.release))

      const beginPull = Effect.fn("image.pull")(function* (given: PullPayload, client: ClientPaths) {
        const payload = {
          ...given,
          kernel: yield* client.kernelSource(given.kernel),
          catalog: yield* client.catalog(given.catalog)
        }
        const name = yield* pullTargetName(payload)
        const id = newOperationId()
        yield* names.reserve(name, id)
        return yield* Effect.gen(function* () {
          yield* ensureNameFree(name)
          const target = yield* imagePullTarget(payload)
          yield* checkKernelSource(target.kernel, payload.catalog)
          return yield* operations.begin({
            id,
            kind: "image.pull",
            target: name,
            run: (progress) =>
              pull({ ...payload, name }).pipe(Effect.provideService(PullProgress, progress), Effect.provide(context)),
            // Publish is uninterruptible: a cancel landing there is seen only after the image exists.
            // (The name is still reserved then, so an image under it can only be this pull's.)
            settleInterrupted: store.images.find(name).pipe(Effect.orElseSucceed(() => Option.none())),
            onEnd: Effect.zipRight(names.release(name), client.release)
          })
        }).pipe(
          Effect.onError(() => names.release(name)),
          Effect.provide(context)
        )
      })

      /** ImageBusy naming the operation that holds the image's name (it may have just ended). */
      const busy = (name: string) =>
        Effect.flatMap(names.holder(name), (holder) =>
          Effect.fail(
            Option.isSome(holder)
              ? new ImageBusy({ name, operation: holder.value, reason: "another operation is working on it" })
              : new ImageBusy({
                  name,
                  operation: "ended just now",
                  reason: "another operation was working on it: try again"
                })
          )
        )

      /** Deletes while holding the name alone: no pull, promote or VM create of it runs meanwhile. */
      const beginDelete = (name: string) =>
        Effect.gen(function* () {
          yield* names.reserve(name, newOperationId()).pipe(Effect.catchTag("ImageNameTaken", () => busy(name)))
          return yield* deleteImage(name).pipe(Effect.ensuring(names.release(name)))
        })

      const beginRegister = Effect.fn("image.register")(function* (payload: RegisterPayload, client: ClientPaths) {
        // The files stay where they are and are read later (promote, every VM boot), long after
        // this request: only clients whose own rights the daemon's are may register them.
        yield* client.refuseUnlessInPlace(
          payload.rootfs,
          "image register leaves files in place for the daemon to read later with its own rights; only root or the daemon's user can register them (image pull --kernel copies them now, with yours)"
        )
        const name = yield* validateImageName(payload.name)
        const id = newOperationId()
        yield* names.reserve(name, id)
        return yield* Effect.gen(function* () {
          yield* ensureNameFree(name)
          yield* inspectRootfs(payload.rootfs)
          yield* checkKernelSource(payload.kernel, payload.catalog)
          return yield* operations.begin({
            id,
            kind: "image.register",
            target: name,
            run: (progress) =>
              registerImage({ ...payload, name }).pipe(
                Effect.provideService(PullProgress, progress),
                Effect.provide(context)
              ),
            // The INSERT may land just as a cancel does; the reserved name makes a row under it ours.
            settleInterrupted: store.images.find(name).pipe(Effect.orElseSucceed(() => Option.none())),
            onEnd: names.release(name)
          })
        }).pipe(
          Effect.onError(() => names.release(name)),
          Effect.provide(context)
        )
      })

      const beginPromote = Effect.fn("image.promote")(function* (name: string) {
        const id = newOperationId()
        yield* names.reserve(name, id).pipe(Effect.catchTag("ImageNameTaken", () => busy(name)))
        return yield* Effect.gen(function* () {
          yield* checkPromotable(name)
          return yield* operations.begin({
            id,
            kind: "image.promote",
            target: name,
            run: (progress) =>
              promoteImage(name).pipe(Effect.provideService(PullProgress, progress), Effect.provide(context)),
            // The commit is uninterruptible: a cancel seen after it finds the image managed.
            settleInterrupted: store.images.find(name).pipe(
              Effect.map(Option.filter((image) => image.managed)),
              Effect.orElseSucceed(() => Option.none())
            ),
            onEnd: names.release(name)
          })
        }).pipe(
          Effect.onError(() => names.release(name)),
          Effect.provide(context)
        )
      })
      // Kernel names are not reserved: two pulls of one kernel name race to publish, and the
      // loser fails with KernelNameTaken (image pulls needing it then use the winner's).
      const beginKernelPull = Effect.fn("kernel.pull")(function* (given: KernelPullPayload, client: ClientPaths) {
        const payload = { ...given, catalog: yield* client.catalog(given.catalog) }
        const target = yield* kernelPullTarget(payload)
        yield* ensureKernelNameFree(target.name)
        return yield* operations.begin({
          kind: "kernel.pull",
          target: target.name,
          run: (progress) =>
            pullKernel({ ...payload, name: target.name }).pipe(
              Effect.provideService(PullProgress, progress),
              Effect.provide(context)
            ),
          settleInterrupted: store.kernels.find(target.name).pipe(Effect.orElseSucceed(() => Option.none())),
          onEnd: client.release
        })
      }, Effect.provide(context))

      return BangerApi.of({
        "image.pull": (payload, { headers }) => withClient(headers, (client) => beginPull(payload, client)),
        "image.list": () => listImages,
        "image.show": ({ name }) => showImage(name),
        "image.delete": ({ name }) => beginDelete(name),
        "image.register": (payload, { headers }) => withClient(headers, (client) => beginRegister(payload, client)),
        "image.promote": ({ name }) => beginPromote(name),
        "kernel.register": ({ name, kernel, initrd, modules }, { headers }) =>
          answering(headers, (client) =>
            Effect.flatMap(client.kernelSource({ _tag: "Paths", kernel, initrd, modules } as const), (admitted) =>
              registerKernel(name, { kernel: admitted.kernel, initrd: admitted.initrd, modules: admitted.modules })
            )
          ),
        "kernel.list": () => listKernels,
        "kernel.show": ({ name }) => showKernel(name),
        "kernel.delete": ({ name, force }) => deleteKernel(name, force ?? false),
        "kernel.pull": (payload, { headers }) => withClient(headers, (client) => beginKernelPull(payload, client)),
        "op.status": ({ id }) => operations.status(id),
        "op.watch": ({ id }) => operations.watch(id),
        "op.cancel": ({ id }) => operations.cancel(id),
        "op.list": () => operations.list,
        "daemon.info": () => Effect.succeed(identity),
        "catalog.list": ({ catalog }, { headers }) =>
          answering(headers, (client) =>
            Effect.flatMap(client.catalog(catalog), listCatalog).pipe(
              Effect.map((listing) => new CatalogListing({ ...listing, source: client.original(listing.source) }))
            )
          ),
        ...makeVmHandlers({ operations, names, context, withClient }),
        "web.login": (_, { headers }) =>
          Option.match(web, {
            onNone: () => Effect.fail(new WebNotServing({ reason: "this daemon does not serve the web UI" })),
            onSome: (sessions) => sessions.issueLogin(headers[PEER_HEADER])
          }),
        "doctor.run": ({ catalog: given, clientVersion }, { headers }) =>
          answering(headers, (client) =>
            Effect.flatMap(client.catalog(given), (catalog) =>
              runDoctor({
                catalog,
                daemon: {
                  _tag: "Serving",
                  pid: identity.pid,
                  version: identity.version,
                  socket: identity.socket,
                  clientVersion
                }
              }).pipe(Effect.provide(LocalArtifacts.fromStore))
            )
          )
      })
    })
  )
