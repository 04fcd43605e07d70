import { Effect, Either } from "effect"
import type { Catalog, CatalogImage, CatalogKernel } from "../../domain/catalog.js"
import type { CatalogInvalid, StoreError } from "../../domain/errors.js"
import { parseReferenceEither } from "../pull/parse-reference.js"
import { LocalArtifacts, type LocalEntry } from "./local-artifacts.js"
import { fail, ok } from "./result.js"

export type LoadedCatalog = Either.Either<Catalog, CatalogInvalid>

export const checkCatalog = (loaded: LoadedCatalog) =>
  Effect.succeed(
    Either.match(loaded, {
      onRight: (catalog) =>
        ok("catalog", `${catalog.source}: ${catalog.kernels.length} kernels, ${catalog.images.length} images`),
      onLeft: (error) =>
        fail(
          "catalog",
          error.message,
          `fix ${error.path}, or name a valid catalog with --catalog PATH or BANGER_CATALOG (the daemon's default is the catalog.json shipped with banger)`
        )
    })
  )

/** A catalog ref as the store records refs, so that a pull by ref counts as local. */
const normalized = (ref: string) =>
  Either.getOrElse(
    Either.map(parseReferenceEither(ref), (parsed) => parsed.normalized),
    () => ref
  )

const findLocal = (entries: ReadonlyArray<LocalEntry>, entry: CatalogKernel | CatalogImage) => {
  const ref = normalized(entry.ref)
  return entries.find((local) => local.name === entry.name || local.ref === ref)
}

/**
 * The default a `vm create` with no arguments uses: ok when it is local, or in the catalog (then it
 * is pulled on first use); fail only when neither, i.e. there is no valid catalog to name one.
 */
const checkDefault = (
  kind: "kernel" | "image",
  loaded: LoadedCatalog,
  local: Effect.Effect<ReadonlyArray<LocalEntry>, StoreError>,
  pick: (catalog: Catalog) => CatalogKernel | CatalogImage
) =>
  Effect.gen(function* () {
    const name = `default-${kind}`
    if (Either.isLeft(loaded)) {
      return fail(name, "no default: the catalog is invalid (see catalog)", "fix the catalog (see the catalog check)")
    }
    const entry = pick(loaded.right)
    const stored = yield* Effect.either(local)
    if (Either.isLeft(stored)) {
      return fail(
        name,
        `${entry.name}: ${stored.left.message}`,
        "repair or move aside banger.db in the state dir (banger makes a new, empty one)"
      )
    }
    const found = findLocal(stored.right, entry)
    return found !== undefined
      ? ok(name, `${entry.name} is local${found.name === entry.name ? "" : ` (as ${found.name})`}`)
      : ok(name, `${entry.name} (${entry.ref}) is pulled on first use`)
  })

export const checkDefaultKernel = (loaded: LoadedCatalog) =>
  Effect.flatMap(LocalArtifacts, (local) =>
    checkDefault("kernel", loaded, local.kernels, (catalog) => catalog.defaultKernel)
  )

export const checkDefaultImage = (loaded: LoadedCatalog) =>
  Effect.flatMap(LocalArtifacts, (local) =>
    checkDefault("image", loaded, local.images, (catalog) => catalog.defaultImage)
  )
