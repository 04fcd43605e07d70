import { Schema } from "effect"

/**
 * Every failure a user can cause or meet is one of these: typed, serializable (they cross the RPC
 * wire intact) and carrying a `reason` that reads well as the tail of a one-line CLI message.
 */

export class InvalidReference extends Schema.TaggedError<InvalidReference>()("InvalidReference", {
  reference: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid image reference "${this.reference}": ${this.reason}`
  }
}

export class InvalidName extends Schema.TaggedError<InvalidName>()("InvalidName", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid name "${this.name}": ${this.reason}`
  }
}

export class InvalidSize extends Schema.TaggedError<InvalidSize>()("InvalidSize", {
  input: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid size "${this.input}": ${this.reason}`
  }
}

export class InvalidPlatform extends Schema.TaggedError<InvalidPlatform>()("InvalidPlatform", {
  input: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid platform "${this.input}": ${this.reason}`
  }
}

export class ImageNameTaken extends Schema.TaggedError<ImageNameTaken>()("ImageNameTaken", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `image "${this.name}" already exists: ${this.reason}`
  }
}

export class ImageNotFound extends Schema.TaggedError<ImageNotFound>()("ImageNotFound", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `image "${this.name}" not found: ${this.reason}`
  }
}

export class KernelMissing extends Schema.TaggedError<KernelMissing>()("KernelMissing", {
  reason: Schema.String
}) {
  override get message() {
    return `no kernel: ${this.reason}`
  }
}

export class InvalidKernelInput extends Schema.TaggedError<InvalidKernelInput>()("InvalidKernelInput", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid kernel input ${this.path}: ${this.reason}`
  }
}

export class KernelNameTaken extends Schema.TaggedError<KernelNameTaken>()("KernelNameTaken", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `kernel "${this.name}" already exists: ${this.reason}`
  }
}

export class KernelNotFound extends Schema.TaggedError<KernelNotFound>()("KernelNotFound", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `kernel "${this.name}" not found: ${this.reason}`
  }
}

/** The registry could not be reached, refused us, or answered with something we cannot use. */
export class RegistryError extends Schema.TaggedError<RegistryError>()("RegistryError", {
  reference: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `registry error for ${this.reference}: ${this.reason}`
  }
}

export class PlatformNotFound extends Schema.TaggedError<PlatformNotFound>()("PlatformNotFound", {
  reference: Schema.String,
  platform: Schema.String,
  available: Schema.Array(Schema.String),
  reason: Schema.String
}) {
  override get message() {
    const offered = this.available.length > 0 ? this.available.join(", ") : "no platforms"
    return `${this.reference} has no ${this.platform} image (offers: ${offered})`
  }
}

export class DigestMismatch extends Schema.TaggedError<DigestMismatch>()("DigestMismatch", {
  expected: Schema.String,
  actual: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    // Without a digest of its own (a size mismatch, an invalid digest), the reason says it all.
    return this.actual === "" || this.actual === this.expected
      ? `${this.expected}: ${this.reason}`
      : `digest mismatch: expected ${this.expected}, got ${this.actual} (${this.reason})`
  }
}

/** A layer entry that would escape or corrupt the rootfs. */
export class UnsafeLayerEntry extends Schema.TaggedError<UnsafeLayerEntry>()("UnsafeLayerEntry", {
  layer: Schema.String,
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `unsafe entry "${this.path}" in layer ${this.layer}: ${this.reason}`
  }
}

/** A layer that cannot be read: corrupt compression or tar, or over the decompression bound. */
export class InvalidLayer extends Schema.TaggedError<InvalidLayer>()("InvalidLayer", {
  layer: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid layer ${this.layer}: ${this.reason}`
  }
}

export class SizeTooSmall extends Schema.TaggedError<SizeTooSmall>()("SizeTooSmall", {
  requestedBytes: Schema.Number,
  requiredBytes: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return `size ${this.requestedBytes} bytes is too small: ${this.reason} (needs at least ${this.requiredBytes} bytes)`
  }
}

/** mkfs.ext4, debugfs or e2fsck failed; `stderr` is the tool's own account. */
export class Ext4Error extends Schema.TaggedError<Ext4Error>()("Ext4Error", {
  tool: Schema.String,
  reason: Schema.String,
  stderr: Schema.String
}) {
  override get message() {
    const detail = this.stderr.trim().split("\n").slice(-3).join(" | ")
    return `${this.tool} failed: ${this.reason}${detail ? ` (${detail})` : ""}`
  }
}

/**
 * A path inside a guest image cannot be used as asked: missing, not a directory, a symlink loop,
 * a name debugfs cannot express. Paths are always resolved within the image, never on the host.
 */
export class GuestPathError extends Schema.TaggedError<GuestPathError>()("GuestPathError", {
  image: Schema.String,
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.path} in ${this.image}: ${this.reason}`
  }
}

/** A local file operation failed (disk full, permissions, ...). */
export class FilesystemError extends Schema.TaggedError<FilesystemError>()("FilesystemError", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.path}: ${this.reason}`
  }
}

/** A thrown system call error as a `FilesystemError` reason: its errno code, then its message. */
export const describeSystemError = (error: unknown): string => {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code
    // Node's own messages already begin with the code ("ENOSPC: no space left on device, write").
    if (code === "ENOSPC") return `no space left on the filesystem (${error.message.replace(/^ENOSPC: /, "")})`
    return code && !error.message.startsWith(code) ? `${code}: ${error.message}` : error.message
  }
  return String(error)
}

export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  reason: Schema.String
}) {
  override get message() {
    return `state database error: ${this.reason}`
  }
}

export class OperationNotFound extends Schema.TaggedError<OperationNotFound>()("OperationNotFound", {
  id: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `operation "${this.id}" not found: ${this.reason}`
  }
}

/** An operation ended without a domain error of its own: a defect, or the daemon stopped or died under it. */
export class OperationFailed extends Schema.TaggedError<OperationFailed>()("OperationFailed", {
  id: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `operation ${this.id} failed: ${this.reason}`
  }
}

export class OperationCancelled extends Schema.TaggedError<OperationCancelled>()("OperationCancelled", {
  id: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `operation ${this.id} was cancelled: ${this.reason}`
  }
}

/** No daemon answers on the socket and auto-start is off (or not possible). */
export class DaemonNotRunning extends Schema.TaggedError<DaemonNotRunning>()("DaemonNotRunning", {
  socket: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `daemon not running (${this.reason})`
  }
}

/** A daemon should be there but cannot be used: it does not answer, failed to start, or went away mid-call. */
export class DaemonUnavailable extends Schema.TaggedError<DaemonUnavailable>()("DaemonUnavailable", {
  socket: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot use the banger daemon at ${this.socket}: ${this.reason}`
  }
}

/** `banger daemon` refused to start: another daemon owns the state dir or the socket, or the socket cannot be served. */
export class DaemonStartError extends Schema.TaggedError<DaemonStartError>()("DaemonStartError", {
  reason: Schema.String
}) {
  override get message() {
    return `daemon cannot start: ${this.reason}`
  }
}

/** The catalog file is missing, not JSON, or breaks a rule; `entry` and `field` say where. */
export class CatalogInvalid extends Schema.TaggedError<CatalogInvalid>()("CatalogInvalid", {
  path: Schema.String,
  /** `kernels[2]` or `images[0] (dev)`; empty for the file as a whole. */
  entry: Schema.String,
  field: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    const where = [this.entry, this.field].filter((part) => part !== "").join(".")
    return `invalid catalog ${this.path}: ${where ? `${where}: ` : ""}${this.reason}`
  }
}

/** A name given where a catalog entry was expected matches none. */
export class CatalogEntryNotFound extends Schema.TaggedError<CatalogEntryNotFound>()("CatalogEntryNotFound", {
  kind: Schema.Literal("kernel", "image"),
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `no ${this.kind} "${this.name}" in the catalog: ${this.reason}`
  }
}

export class VmNameTaken extends Schema.TaggedError<VmNameTaken>()("VmNameTaken", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `VM "${this.name}" already exists: ${this.reason}`
  }
}

export class VmNotFound extends Schema.TaggedError<VmNotFound>()("VmNotFound", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `VM "${this.name}" not found: ${this.reason}`
  }
}

/** A request that cannot be honoured in the VM's current state or on this host (too much memory, still running...). */
export class VmRefused extends Schema.TaggedError<VmRefused>()("VmRefused", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `VM "${this.name}": ${this.reason}`
  }
}

/**
 * A VMM (Firecracker or QEMU) could not be started, configured, inspected or stopped. A
 * Firecracker API fault carries its `fault_message` verbatim in `reason`.
 */
export class VmmError extends Schema.TaggedError<VmmError>()("VmmError", {
  vmId: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `VM ${this.vmId}: ${this.reason}`
  }
}

/** A rootfs given to `image register` that banger cannot use as one; `reason` says what is wrong. */
export class InvalidRootfs extends Schema.TaggedError<InvalidRootfs>()("InvalidRootfs", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid rootfs ${this.path}: ${this.reason}`
  }
}

/** A registered image's file was changed, replaced or removed after registration, so it is not copied. */
export class ImageSourceChanged extends Schema.TaggedError<ImageSourceChanged>()("ImageSourceChanged", {
  name: Schema.String,
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `image "${this.name}" cannot be promoted: ${this.path} ${this.reason}`
  }
}

/** `image promote` of an image that is not (or no longer) an unmanaged one. */
export class ImageNotPromotable extends Schema.TaggedError<ImageNotPromotable>()("ImageNotPromotable", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `image "${this.name}" cannot be promoted: ${this.reason}`
  }
}

/** A running operation (a pull, register or promote) holds the image's name. */
export class ImageBusy extends Schema.TaggedError<ImageBusy>()("ImageBusy", {
  name: Schema.String,
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `image "${this.name}" is busy: ${this.reason} (operation ${this.operation})`
  }
}

/** A file given or found as a kernel is neither an ELF vmlinux nor a bzImage (read from its magic). */
export class NotAKernel extends Schema.TaggedError<NotAKernel>()("NotAKernel", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.path} is not a kernel image: ${this.reason}`
  }
}

/** A kernel OCI image holds no kernel, or several, or an ambiguous initrd / modules tree. */
export class KernelImageInvalid extends Schema.TaggedError<KernelImageInvalid>()("KernelImageInvalid", {
  reference: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.reference} is not a usable kernel image: ${this.reason}`
  }
}

/** `kernel delete` of a kernel that images were made with (see images.kernel_name). */
export class KernelInUse extends Schema.TaggedError<KernelInUse>()("KernelInUse", {
  name: Schema.String,
  images: Schema.Array(Schema.String),
  reason: Schema.String
}) {
  override get message() {
    return `kernel "${this.name}" is used by image(s) ${this.images.join(", ")}: ${this.reason}`
  }
}

/** An image that VMs were created from cannot be deleted while they exist (their disks came from it). */
export class ImageInUse extends Schema.TaggedError<ImageInUse>()("ImageInUse", {
  name: Schema.String,
  vms: Schema.Array(Schema.String),
  reason: Schema.String
}) {
  override get message() {
    return `image "${this.name}" is used by VM(s) ${this.vms.join(", ")}: ${this.reason}`
  }
}

/** `banger ui` asked a daemon that does not serve the web UI. */
export class WebNotServing extends Schema.TaggedError<WebNotServing>()("WebNotServing", {
  reason: Schema.String
}) {
  override get message() {
    return `web UI not available: ${this.reason}`
  }
}

/** A file given to `vm create --ssh-key` that is not an ssh public key (one `type base64 [comment]` per line). */
export class InvalidSshKey extends Schema.TaggedError<InvalidSshKey>()("InvalidSshKey", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid ssh public key ${this.path}: ${this.reason}`
  }
}

/** ssh-keygen could not make a key (missing, failed, or its output could not be kept). */
export class SshKeygenError extends Schema.TaggedError<SshKeygenError>()("SshKeygenError", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot make ssh key ${this.path}: ${this.reason}`
  }
}

/**
 * A VM cannot be reached over ssh: stopped, no network address, not set up for ssh, or its sshd
 * did not answer in time (then `reason` names the address and what the console last said).
 */
export class SshUnavailable extends Schema.TaggedError<SshUnavailable>()("SshUnavailable", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot ssh into VM "${this.name}": ${this.reason}`
  }
}

/**
 * VM networking cannot work here at all: the daemon lacks CAP_NET_ADMIN or /dev/net/tun. The
 * reason says how to fix it (run the daemon as root) or how to do without (`--no-network`).
 */
export class NetworkUnavailable extends Schema.TaggedError<NetworkUnavailable>()("NetworkUnavailable", {
  reason: Schema.String
}) {
  override get message() {
    return `VM networking is unavailable: ${this.reason}`
  }
}

/** Setting up or tearing down a VM's host network (tap, address, nftables table) failed. */
export class NetworkError extends Schema.TaggedError<NetworkError>()("NetworkError", {
  reason: Schema.String
}) {
  override get message() {
    return `network: ${this.reason}`
  }
}

/** Every /30 of banger's address pool is taken by a VM. */
export class AddressPoolExhausted extends Schema.TaggedError<AddressPoolExhausted>()("AddressPoolExhausted", {
  pool: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `no free address in ${this.pool}: ${this.reason}`
  }
}

/**
 * A host path a client named that the daemon will not read for it: the client's own rights do
 * not reach it, or the daemon cannot act with them. `user` is how the client is shown
 * (`alice (uid 1001)`).
 */
export class ClientPathRefused extends Schema.TaggedError<ClientPathRefused>()("ClientPathRefused", {
  path: Schema.String,
  user: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.path}: ${this.reason}`
  }
}
