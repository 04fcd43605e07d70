import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { CatalogListing } from "../domain/catalog-listing.js"
import {
  CatalogInvalid,
  ClientPathRefused,
  FilesystemError,
  ImageBusy,
  ImageInUse,
  ImageNotFound,
  InvalidKernelInput,
  InvalidName,
  KernelInUse,
  KernelNameTaken,
  KernelNotFound,
  NotAKernel,
  OperationNotFound,
  StoreError,
  WebNotServing
} from "../domain/errors.js"
import {
  BangerError,
  CatalogListPayload,
  DaemonInfo,
  DoctorCheck,
  DoctorPayload,
  Image,
  Kernel,
  KernelDeletePayload,
  KernelPullPayload,
  KernelRegisterPayload,
  OperationStatus,
  PullPayload,
  RegisterPayload,
  SshTarget,
  Vm,
  VmCreatePayload,
  VmForcePayload,
  VmLogsPayload,
  VmSshTargetPayload,
  WebLogin
} from "./schemas.js"

const byName = { name: Schema.String }
const byId = { id: Schema.String }

/**
 * The daemon's API: one method per CLI action. Dotted tags nest on the client (`client.image.list()`).
 * Long work runs as an operation: `image.pull` answers with the new operation's status at once.
 */
export class BangerApi extends RpcGroup.make(
  Rpc.make("image.pull", { payload: PullPayload, success: OperationStatus, error: BangerError }),
  Rpc.make("image.list", { success: Schema.Array(Image), error: StoreError }),
  Rpc.make("image.show", { payload: byName, success: Image, error: Schema.Union(ImageNotFound, StoreError) }),
  Rpc.make("image.delete", {
    payload: byName,
    success: Image,
    error: Schema.Union(ImageNotFound, ImageBusy, ImageInUse, StoreError)
  }),
  /** Records an unmanaged image (its files stay put); an operation, since `--kernel-ref` may pull a kernel. */
  Rpc.make("image.register", { payload: RegisterPayload, success: OperationStatus, error: BangerError }),
  /** Copies an unmanaged image's files into the store and makes it managed, as an operation. */
  Rpc.make("image.promote", { payload: byName, success: OperationStatus, error: BangerError }),
  Rpc.make("kernel.register", {
    payload: KernelRegisterPayload,
    success: Kernel,
    error: Schema.Union(
      InvalidName,
      InvalidKernelInput,
      KernelNameTaken,
      FilesystemError,
      StoreError,
      NotAKernel,
      ClientPathRefused
    )
  }),
  Rpc.make("kernel.list", { success: Schema.Array(Kernel), error: StoreError }),
  Rpc.make("kernel.show", { payload: byName, success: Kernel, error: Schema.Union(KernelNotFound, StoreError) }),
  Rpc.make("kernel.delete", {
    payload: KernelDeletePayload,
    success: Kernel,
    error: Schema.Union(KernelNotFound, KernelInUse, StoreError)
  }),
  /** Like `image.pull`: answers the new operation's status at once (kind "kernel.pull"). */
  Rpc.make("kernel.pull", { payload: KernelPullPayload, success: OperationStatus, error: BangerError }),
  Rpc.make("op.status", {
    payload: byId,
    success: OperationStatus,
    error: Schema.Union(OperationNotFound, StoreError)
  }),
  /** Status updates until the operation ends; the last element is the final status. */
  Rpc.make("op.watch", {
    payload: byId,
    success: OperationStatus,
    error: Schema.Union(OperationNotFound, StoreError),
    stream: true
  }),
  /** Interrupts the operation and answers once its rollback is done; a finished one is returned as is. */
  Rpc.make("op.cancel", {
    payload: byId,
    success: OperationStatus,
    error: Schema.Union(OperationNotFound, StoreError)
  }),
  /** Running operations and finished ones not yet pruned, newest first. */
  Rpc.make("op.list", { success: Schema.Array(OperationStatus), error: StoreError }),
  Rpc.make("daemon.info", { success: DaemonInfo }),
  /** The catalog (the request's, else the daemon's), each entry with whether it is already local. */
  Rpc.make("catalog.list", {
    payload: CatalogListPayload,
    success: CatalogListing,
    error: Schema.Union(CatalogInvalid, StoreError, ClientPathRefused, FilesystemError)
  }),
  // VMs: create, start and restart boot a guest (seconds to minutes), so they run as operations.
  Rpc.make("vm.create", { payload: VmCreatePayload, success: OperationStatus, error: BangerError }),
  Rpc.make("vm.start", { payload: byName, success: OperationStatus, error: BangerError }),
  Rpc.make("vm.restart", { payload: byName, success: OperationStatus, error: BangerError }),
  /** Asks the guest to power off (or, with force, signals the VMM); answers once it is down. */
  Rpc.make("vm.stop", { payload: VmForcePayload, success: Vm, error: BangerError }),
  Rpc.make("vm.delete", { payload: VmForcePayload, success: Vm, error: BangerError }),
  /** Rows checked against their processes: a VM whose VMM died is listed as stopped. */
  Rpc.make("vm.list", { success: Schema.Array(Vm), error: BangerError }),
  Rpc.make("vm.show", { payload: byName, success: Vm, error: BangerError }),
  /** The console log as text chunks; with follow, what the guest prints next, until cancelled. */
  Rpc.make("vm.logs", { payload: VmLogsPayload, success: Schema.String, error: BangerError, stream: true }),
  /** Where and how to ssh into a VM (address, banger's key, the VM's known_hosts); the CLI runs ssh. */
  Rpc.make("vm.sshTarget", { payload: VmSshTargetPayload, success: SshTarget, error: BangerError }),
  /** Every check of `banger doctor`, as the daemon sees the host; problems are results, never errors. */
  Rpc.make("doctor.run", {
    payload: DoctorPayload,
    success: Schema.Array(DoctorCheck),
    error: Schema.Union(ClientPathRefused, FilesystemError)
  }),
  /** A fresh one-time login URL for the web UI (`banger ui`); only socket users can ask for one. */
  Rpc.make("web.login", { success: WebLogin, error: WebNotServing })
) {}
