import { Schema } from "effect"

/** A kernel published as an OCI image: `/boot/vmlinux*` (or vmlinuz), optional initrd, `/lib/modules/<v>/`. */
export class CatalogKernel extends Schema.Class<CatalogKernel>("CatalogKernel")({
  name: Schema.String,
  ref: Schema.String,
  arch: Schema.String,
  description: Schema.String,
  default: Schema.optionalWith(Schema.Boolean, { default: () => false })
}) {}

/** An image known to boot as a VM, paired with the catalog kernel it boots with. */
export class CatalogImage extends Schema.Class<CatalogImage>("CatalogImage")({
  name: Schema.String,
  ref: Schema.String,
  /** A catalog kernel's name. */
  kernel: Schema.String,
  description: Schema.String,
  default: Schema.optionalWith(Schema.Boolean, { default: () => false })
}) {}

/** The file's shape; `loadCatalog` checks the rules across entries. */
export const CatalogFile = Schema.Struct({
  kernels: Schema.Array(CatalogKernel),
  images: Schema.Array(CatalogImage)
})

/** A loaded, validated catalog: exactly one default kernel and image, every image's kernel listed. */
export class Catalog extends Schema.Class<Catalog>("Catalog")({
  /** The file it was read from. */
  source: Schema.String,
  kernels: Schema.Array(CatalogKernel),
  images: Schema.Array(CatalogImage)
}) {
  findKernel(name: string): CatalogKernel | undefined {
    return this.kernels.find((kernel) => kernel.name === name)
  }
  findImage(name: string): CatalogImage | undefined {
    return this.images.find((image) => image.name === name)
  }
  get defaultKernel(): CatalogKernel {
    return this.kernels.find((kernel) => kernel.default)!
  }
  get defaultImage(): CatalogImage {
    return this.images.find((image) => image.default)!
  }
}
