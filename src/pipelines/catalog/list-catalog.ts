import { Effect, Either } from "effect"
import {
  CatalogImageListing,
  CatalogKernelListing,
  CatalogListing,
  type LocalState
} from "../../domain/catalog-listing.js"
import { Store } from "../../layers/store/store.js"
import { parseReferenceEither } from "../pull/parse-reference.js"
import { loadCatalog } from "./load-catalog.js"

/** A ref in its canonical form (`debian` → `docker.io/library/debian:latest`); as given when unparsable. */
const canonical = (ref: string): string =>
  Either.getOrElse(
    Either.map(parseReferenceEither(ref), (r) => r.normalized),
    () => ref
  )

type Stored = { readonly name: string; readonly ref: string | null }

/** Where the entry named `name` stands in the store: the stored one's origin decides `yes` or `other-ref`. */
export const localState = (
  entry: { readonly name: string; readonly ref: string },
  stored: ReadonlyArray<Stored>
): { readonly local: LocalState; readonly localRef: string | null } => {
  const found = stored.find((item) => item.name === entry.name)
  if (found === undefined) return { local: "no", localRef: null }
  const same = found.ref !== null && canonical(found.ref) === canonical(entry.ref)
  return { local: same ? "yes" : "other-ref", localRef: found.ref }
}

/** The catalog a request names (else the daemon's), each entry with whether it is already local. */
export const listCatalog = Effect.fn("listCatalog")(function* (file?: string | undefined) {
  const catalog = yield* loadCatalog(file)
  const store = yield* Store
  const [kernels, images] = yield* Effect.all([store.kernels.list, store.images.list])
  return new CatalogListing({
    source: catalog.source,
    kernels: catalog.kernels.map(
      (kernel) =>
        new CatalogKernelListing({
          name: kernel.name,
          ref: kernel.ref,
          arch: kernel.arch,
          description: kernel.description,
          default: kernel.default,
          ...localState(kernel, kernels)
        })
    ),
    images: catalog.images.map(
      (image) =>
        new CatalogImageListing({
          name: image.name,
          ref: image.ref,
          kernel: image.kernel,
          description: image.description,
          default: image.default,
          ...localState(image, images)
        })
    )
  })
})
