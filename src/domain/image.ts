import { Schema } from "effect"

/** How the image runs, from its OCI config: what banger's built-in init starts in the VM. */
export class ImageRuntime extends Schema.Class<ImageRuntime>("ImageRuntime")({
  entrypoint: Schema.Array(Schema.String),
  cmd: Schema.Array(Schema.String),
  env: Schema.Array(Schema.String),
  workingDir: Schema.String,
  user: Schema.String
}) {
  static readonly empty = new ImageRuntime({ entrypoint: [], cmd: [], env: [], workingDir: "", user: "" })
}

export const ImageName = Schema.String.pipe(Schema.pattern(/^[a-z0-9][a-z0-9._-]{0,63}$/), Schema.brand("ImageName"))

/** What a file looked like when it was registered: promote refuses to copy one that differs. */
export const FileStamp = Schema.Struct({ size: Schema.Number, mtimeMs: Schema.Number })
export type FileStamp = typeof FileStamp.Type

/** The stamps of a registered (unmanaged) image's files; modules, a tree, are only checked to exist. */
export const SourceStamps = Schema.Struct({
  rootfs: FileStamp,
  kernel: FileStamp,
  initrd: Schema.NullOr(FileStamp)
})
export type SourceStamps = typeof SourceStamps.Type

/** A managed (pulled) or registered image as recorded in the state database. */
export class Image extends Schema.Class<Image>("Image")({
  id: Schema.String,
  name: Schema.String,
  /** Normalized reference it was pulled from; null for registered images. */
  ref: Schema.NullOr(Schema.String),
  manifestDigest: Schema.NullOr(Schema.String),
  platform: Schema.NullOr(Schema.String),
  managed: Schema.Boolean,
  rootfs: Schema.String,
  kernel: Schema.String,
  initrd: Schema.NullOr(Schema.String),
  modules: Schema.NullOr(Schema.String),
  sizeBytes: Schema.Number,
  createdAt: Schema.String,
  /** The stored kernel (`banger kernel list`) the boot artifacts were copied from; null for paths. */
  kernelName: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  /** Pulled images: their OCI config's Entrypoint, Cmd, Env, WorkingDir, User; registered ones: empty. */
  runtime: Schema.optionalWith(ImageRuntime, { default: () => ImageRuntime.empty }),
  /** Unmanaged images only: their files as registered; null once promoted into the store. */
  sources: Schema.optionalWith(Schema.NullOr(SourceStamps), { default: () => null })
}) {}

/**
 * How a kernel file is packed, read from its magic: `elf` (an uncompressed vmlinux, what
 * Firecracker boots) or `bzImage` (QEMU only).
 */
export const KernelFormat = Schema.Literal("elf", "bzImage")
export type KernelFormat = typeof KernelFormat.Type

/** A kernel triple kept in the local kernel store. */
export class Kernel extends Schema.Class<Kernel>("Kernel")({
  name: Schema.String,
  kernel: Schema.String,
  initrd: Schema.NullOr(Schema.String),
  modules: Schema.NullOr(Schema.String),
  createdAt: Schema.String,
  /** Normalized reference it was pulled from; null for registered kernels. */
  ref: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  manifestDigest: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  /** `6.1.0-28-cloud-amd64`: from the modules dir or the image's `Linux version` string. */
  version: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  /** Null only for kernels recorded before formats were (see KernelFormat). */
  format: Schema.optionalWith(Schema.NullOr(KernelFormat), { default: () => null })
}) {}

/** Resolved, validated boot artifacts: absolute paths that exist. */
export interface KernelInputs {
  readonly kernel: string
  readonly initrd: string | undefined
  readonly modules: string | undefined
}
