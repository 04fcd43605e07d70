import { Schema } from "effect"
import { DoctorCheck } from "../domain/doctor.js"
import * as Errors from "../domain/errors.js"
import { Image, Kernel } from "../domain/image.js"
import { SshKeyFile, SshTarget } from "../domain/ssh.js"
import { Vm } from "../domain/vm.js"
import { AccelRequest, VmmBackend } from "../domain/vmm.js"
import { PullPhase } from "../pipelines/pull/progress.js"

/** Where a pull's boot artifacts come from; mirrors `KernelSource` of the pull pipeline. */
export const KernelSourceSchema = Schema.Union(
  Schema.TaggedStruct("Paths", {
    kernel: Schema.String,
    initrd: Schema.optional(Schema.String),
    modules: Schema.optional(Schema.String)
  }),
  Schema.TaggedStruct("Stored", { name: Schema.String })
)

/** `image.pull`; paths must be absolute, since the daemon resolves them, not the client's cwd. */
export const PullPayload = Schema.Struct({
  reference: Schema.String,
  name: Schema.optional(Schema.String),
  size: Schema.optional(Schema.String),
  platform: Schema.optional(Schema.String),
  kernel: Schema.optional(KernelSourceSchema),
  /** The request's catalog file (absolute): catalog image and kernel names are looked up there. */
  catalog: Schema.optional(Schema.String)
})
export type PullPayload = typeof PullPayload.Type

/** `image.register`; `rootfs` and kernel paths absolute, as for pulls. */
export const RegisterPayload = Schema.Struct({
  name: Schema.String,
  rootfs: Schema.String,
  kernel: Schema.optional(KernelSourceSchema),
  /** The client's `--catalog`, for a `--kernel-ref` that names a catalog kernel. */
  catalog: Schema.optional(Schema.String)
})
export type RegisterPayload = typeof RegisterPayload.Type
/** `kernel.pull`: a reference or a catalog kernel's name. */
export const KernelPullPayload = Schema.Struct({
  reference: Schema.String,
  name: Schema.optional(Schema.String),
  platform: Schema.optional(Schema.String),
  catalog: Schema.optional(Schema.String)
})
export type KernelPullPayload = typeof KernelPullPayload.Type

export const KernelDeletePayload = Schema.Struct({
  name: Schema.String,
  /** Delete even when images were made with it (they keep their own copies). */
  force: Schema.optional(Schema.Boolean)
})

export const KernelRegisterPayload = Schema.Struct({
  name: Schema.String,
  kernel: Schema.String,
  initrd: Schema.optional(Schema.String),
  modules: Schema.optional(Schema.String)
})

/** `catalog.list`; `catalog` (absolute, from --catalog or BANGER_CATALOG) replaces the daemon's catalog. */
export const CatalogListPayload = Schema.Struct({
  catalog: Schema.optional(Schema.String)
})

/**
 * Every domain error, so any failure of any pipeline crosses the wire as the same tagged class
 * (and prints the same message) as when it ran in-process.
 */
export const BangerError = Schema.Union(
  Errors.InvalidReference,
  Errors.InvalidName,
  Errors.InvalidSize,
  Errors.InvalidPlatform,
  Errors.ImageNameTaken,
  Errors.ImageNotFound,
  Errors.KernelMissing,
  Errors.InvalidKernelInput,
  Errors.KernelNameTaken,
  Errors.KernelNotFound,
  Errors.RegistryError,
  Errors.PlatformNotFound,
  Errors.DigestMismatch,
  Errors.UnsafeLayerEntry,
  Errors.InvalidLayer,
  Errors.SizeTooSmall,
  Errors.Ext4Error,
  Errors.FilesystemError,
  Errors.GuestPathError,
  Errors.StoreError,
  Errors.OperationNotFound,
  Errors.OperationFailed,
  Errors.OperationCancelled,
  Errors.InvalidRootfs,
  Errors.ImageSourceChanged,
  Errors.ImageNotPromotable,
  Errors.ImageBusy,
  Errors.NotAKernel,
  Errors.KernelImageInvalid,
  Errors.KernelInUse,
  Errors.CatalogInvalid,
  Errors.CatalogEntryNotFound,
  Errors.VmNameTaken,
  Errors.VmNotFound,
  Errors.VmRefused,
  Errors.VmmError,
  Errors.ImageInUse,
  Errors.WebNotServing,
  Errors.InvalidSshKey,
  Errors.SshKeygenError,
  Errors.SshUnavailable,
  Errors.NetworkUnavailable,
  Errors.NetworkError,
  Errors.AddressPoolExhausted,
  Errors.ClientPathRefused
)

/** `vm.create`: sizes as the CLI takes them; the daemon checks them against the host. */
export const VmCreatePayload = Schema.Struct({
  name: Schema.String,
  image: Schema.optional(Schema.String),
  cpus: Schema.optional(Schema.Number),
  memoryMib: Schema.optional(Schema.Number),
  diskSize: Schema.optional(Schema.String),
  vmm: Schema.optional(VmmBackend),
  accel: Schema.optional(AccelRequest),
  /** False for `--no-start`. */
  start: Schema.Boolean,
  catalog: Schema.optional(Schema.String),
  /** `--ssh-key` files as the CLI read them (the daemon checks them). */
  sshKeys: Schema.optional(Schema.Array(SshKeyFile)),
  /** False for `--no-network`; absent means a network. */
  network: Schema.optional(Schema.Boolean)
})
export type VmCreatePayload = typeof VmCreatePayload.Type

export const VmForcePayload = Schema.Struct({ name: Schema.String, force: Schema.optional(Schema.Boolean) })
/** `vm.sshTarget`; `allowStopped` for `vm show`, which prints the command of a stopped VM too. */
export const VmSshTargetPayload = Schema.Struct({ name: Schema.String, allowStopped: Schema.optional(Schema.Boolean) })
export const VmLogsPayload = Schema.Struct({ name: Schema.String, follow: Schema.optional(Schema.Boolean) })
export type BangerError = typeof BangerError.Type

export const OperationKind = Schema.Literal(
  "image.pull",
  "kernel.pull",
  "image.register",
  "image.promote",
  "vm.create",
  "vm.start",
  "vm.restart"
)
export type OperationKind = typeof OperationKind.Type

export const OperationState = Schema.Literal("running", "succeeded", "failed", "cancelled")
export type OperationState = typeof OperationState.Type

export const LayerStatus = Schema.Struct({
  index: Schema.Number,
  digest: Schema.String,
  bytesDone: Schema.Number,
  bytesTotal: Schema.Number,
  /** Came from the blob cache without a download. */
  cached: Schema.Boolean
})
export type LayerStatus = typeof LayerStatus.Type

export const OperationProgress = Schema.Struct({
  /** Layers reported so far, by index; `layerCount` says how many the image has (0 until known). */
  layers: Schema.Array(LayerStatus),
  layerCount: Schema.Number,
  /** Sums over the reported layers. */
  bytesDone: Schema.Number,
  bytesTotal: Schema.Number
})
export type OperationProgress = typeof OperationProgress.Type

/** The latest retry an operation's registry client announced; `count` tells a new one from a repeat. */
export const RetryStatus = Schema.Struct({
  what: Schema.String,
  reason: Schema.String,
  attempt: Schema.Number,
  of: Schema.Number,
  count: Schema.Number
})
export type RetryStatus = typeof RetryStatus.Type

export const emptyProgress: OperationProgress = { layers: [], layerCount: 0, bytesDone: 0, bytesTotal: 0 }

/**
 * What an operation produced: an image (`image.pull`) or a kernel (`kernel.pull`). Image first:
 * a kernel lacks an image's id, rootfs and size, so each decodes as what it is.
 */
export const OperationResult = Schema.Union(Image, Kernel, Vm)
export type OperationResult = typeof OperationResult.Type

export class OperationStatus extends Schema.Class<OperationStatus>("OperationStatus")({
  id: Schema.String,
  kind: OperationKind,
  /** What the operation makes: the image name for a pull. */
  target: Schema.String,
  state: OperationState,
  /** The pipeline step under way (or the last one reached); null before the first. */
  stage: Schema.NullOr(Schema.String),
  /** What is being pulled when one operation pulls a kernel then an image; null before the first. */
  phase: Schema.optionalWith(Schema.NullOr(Schema.Struct({ phase: PullPhase, name: Schema.String })), {
    default: () => null
  }),
  progress: OperationProgress,
  /** The last retry announced (`layer 2/3: no data for 30s, retrying (2 of 4)`); null if none. */
  retry: Schema.optionalWith(Schema.NullOr(RetryStatus), { default: () => null }),
  result: Schema.NullOr(OperationResult),
  error: Schema.NullOr(BangerError),
  startedAt: Schema.String,
  endedAt: Schema.NullOr(Schema.String)
}) {}

export class DaemonInfo extends Schema.Class<DaemonInfo>("DaemonInfo")({
  pid: Schema.Number,
  version: Schema.String,
  stateDir: Schema.String,
  socket: Schema.String,
  startedAt: Schema.String
}) {}

export { Image, Kernel, SshTarget, Vm }

/** `doctor.run`: the catalog to check (a client's --catalog) and the asking CLI's version, to compare. */
export const DoctorPayload = Schema.Struct({
  catalog: Schema.optional(Schema.String),
  clientVersion: Schema.optional(Schema.String)
})
export type DoctorPayload = typeof DoctorPayload.Type

export { DoctorCheck }

/** `web.login`: where the UI is, with a one-time token in the URL that logs a browser in. */
export class WebLogin extends Schema.Class<WebLogin>("WebLogin")({
  url: Schema.String,
  /** The token is refused after this (ISO time) even if unused. */
  expiresAt: Schema.String
}) {}
