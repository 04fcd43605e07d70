import { Schema } from "effect"

export const ImageName = Schema.String.pipe(Schema.pattern(/^[a-z0-9][a-z0-9._-]{0,63}$/), Schema.brand("ImageName"))

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
  createdAt: Schema.String
}) {}

/** A kernel triple kept in the local kernel store. */
export class Kernel extends Schema.Class<Kernel>("Kernel")({
  name: Schema.String,
  kernel: Schema.String,
  initrd: Schema.NullOr(Schema.String),
  modules: Schema.NullOr(Schema.String),
  createdAt: Schema.String
}) {}

/** Resolved, validated boot artifacts: absolute paths that exist. */
export interface KernelInputs {
  readonly kernel: string
  readonly initrd: string | undefined
  readonly modules: string | undefined
}
