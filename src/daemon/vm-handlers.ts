import type { Headers } from "@effect/platform"
import type { Context } from "effect"
import { Effect, Option, Stream } from "effect"
import type { GuestFs } from "../layers/guest/guest-fs.js"
import type { HostResources } from "../layers/host/host-resources.js"
import type { Network } from "../layers/network/network.js"
import type { Ssh } from "../layers/ssh/ssh.js"
import { Store } from "../layers/store/store.js"
import type { ProcessTable } from "../layers/vmm/process-table.js"
import type { Vmm } from "../layers/vmm/vmm.js"
import { PullProgress } from "../pipelines/pull/progress.js"
import { createVm, vmImageName } from "../pipelines/vm/create.js"
import { validateSshKeys } from "../pipelines/vm/guest-ssh.js"
import { deleteVm, restartVm, startVm, stopVm } from "../pipelines/vm/lifecycle.js"
import { findVm, listVms } from "../pipelines/vm/live-state.js"
import { vmLogs } from "../pipelines/vm/logs.js"
import { vmSshTarget } from "../pipelines/vm/ssh-target.js"
import { validateVmName } from "../pipelines/vm/validate.js"
import type { BangerError, OperationResult, VmCreatePayload } from "../rpc/schemas.js"
import type { ClientPaths } from "./client-paths.js"
import type { HandlerServices } from "./handlers.js"
import type { NameReservations } from "./name-reservations.js"
import { newOperationId, type OperationsShape } from "./operations.js"

/** What the VM handlers run on, besides the state and pull services. */
export type VmServices = Vmm | HostResources | GuestFs | ProcessTable | Network | Ssh

type Services = HandlerServices | VmServices

/** VM names share the reservation table with images; the prefix keeps them apart. */
const vmKey = (name: string) => `vm:${name}`

/**
 * The `vm.*` handlers. One operation at a time per VM: a create reserves the name before it
 * begins, and start/restart hold it while they run, so two boots of one VM never race.
 */
export const makeVmHandlers = (deps: {
  readonly operations: OperationsShape
  readonly names: NameReservations["Type"]
  readonly context: Context.Context<Services>
  readonly withClient: <A, E>(
    headers: Headers.Headers,
    use: (client: ClientPaths) => Effect.Effect<A, E, Services>
  ) => Effect.Effect<A, E>
}) => {
  const { operations, names, context, withClient } = deps
  const begin = (
    kind: "vm.create" | "vm.start" | "vm.restart",
    name: string,
    check: Effect.Effect<unknown, BangerError, Services>,
    run: Effect.Effect<OperationResult, BangerError, Services | PullProgress>,
    /** The image the operation reads, held (shared) while it runs so that it cannot be deleted. */
    image?: Effect.Effect<string, BangerError, Services>,
    /** Runs as the operation ends (or fails to begin): the request's intake copies go then. */
    clientRelease: Effect.Effect<void> = Effect.void
  ) =>
    Effect.gen(function* () {
      const id = newOperationId()
      yield* names.reserve(vmKey(name), id)
      let imageName: string | undefined
      const release = Effect.suspend(() =>
        Effect.zipRight(
          names.release(vmKey(name)),
          imageName === undefined ? Effect.void : names.unshare(imageName, id)
        )
      ).pipe(Effect.zipRight(clientRelease))
      return yield* Effect.gen(function* () {
        yield* check
        if (image !== undefined) {
          const held = yield* image
          yield* names.share(held, id)
          imageName = held
        }
        return yield* operations.begin({
          id,
          kind,
          target: name,
          run: (progress) => run.pipe(Effect.provideService(PullProgress, progress), Effect.provide(context)),
          // A create or boot that finished just as a cancel landed: the row says whether it did.
          settleInterrupted: Effect.flatMap(Store, (store) => store.vms.find(name)).pipe(
            Effect.map(Option.filter((vm) => vm.state === "running" || kind === "vm.create")),
            Effect.orElseSucceed(() => Option.none()),
            Effect.provide(context)
          ),
          onEnd: release
        })
      }).pipe(
        Effect.onError(() => release),
        Effect.provide(context)
      )
    })

  return {
    // --ssh-key files come as their contents (the CLI read them as its user); a --catalog as a path.
    "vm.create": (given: VmCreatePayload, { headers }: { readonly headers: Headers.Headers }) =>
      withClient(headers, (client) =>
        Effect.flatMap(client.catalog(given.catalog), (catalog) => {
          const payload = { ...given, catalog }
          return begin(
            "vm.create",
            payload.name,
            Effect.zip(validateVmName(payload.name), validateSshKeys(payload.sshKeys)),
            createVm(payload),
            vmImageName(payload.image, payload.catalog),
            client.release
          )
        })
      ),
    "vm.start": ({ name }: { readonly name: string }) => begin("vm.start", name, findVm(name), startVm(name)),
    "vm.restart": ({ name }: { readonly name: string }) => begin("vm.restart", name, findVm(name), restartVm(name)),
    "vm.stop": ({ name, force }: { readonly name: string; readonly force?: boolean | undefined }) =>
      stopVm(name, { force: force ?? false }).pipe(Effect.provide(context)),
    "vm.delete": ({ name, force }: { readonly name: string; readonly force?: boolean | undefined }) =>
      deleteVm(name, { force: force ?? false }).pipe(Effect.provide(context)),
    "vm.list": () => listVms.pipe(Effect.provide(context)),
    "vm.show": ({ name }: { readonly name: string }) => findVm(name).pipe(Effect.provide(context)),
    "vm.sshTarget": ({ name, allowStopped }: { readonly name: string; readonly allowStopped?: boolean | undefined }) =>
      vmSshTarget(name, { allowStopped }).pipe(Effect.provide(context)),
    "vm.logs": ({ name, follow }: { readonly name: string; readonly follow?: boolean | undefined }) =>
      vmLogs(name, { follow: follow ?? false }).pipe(Stream.provideContext(context))
  }
}
