import { Schema } from "effect"

/**
 * Whether a catalog entry is already in the local store, by name: `yes` when the stored kernel
 * (image) of that name came from the entry's ref, `other-ref` when it came from elsewhere (another
 * ref, or registered from paths), `no` when none has the name.
 */
export const LocalState = Schema.Literal("no", "yes", "other-ref")
export type LocalState = typeof LocalState.Type

const entryFields = {
  name: Schema.String,
  ref: Schema.String,
  description: Schema.String,
  default: Schema.Boolean,
  local: LocalState,
  /** The stored one's recorded ref; null when not local or registered from paths. */
  localRef: Schema.NullOr(Schema.String)
}

export class CatalogKernelListing extends Schema.Class<CatalogKernelListing>("CatalogKernelListing")({
  ...entryFields,
  arch: Schema.String
}) {}

export class CatalogImageListing extends Schema.Class<CatalogImageListing>("CatalogImageListing")({
  ...entryFields,
  /** A catalog kernel's name. */
  kernel: Schema.String
}) {}

/** `catalog.list`: the catalog a request used, each entry with its local state. */
export class CatalogListing extends Schema.Class<CatalogListing>("CatalogListing")({
  /** The file it was read from. */
  source: Schema.String,
  kernels: Schema.Array(CatalogKernelListing),
  images: Schema.Array(CatalogImageListing)
}) {}
