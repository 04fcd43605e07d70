import { Effect, Either } from "effect"
import type { Catalog, CatalogImage, CatalogKernel } from "../../domain/catalog.js"
import type { CatalogInvalid, StoreError } from "../../domain/errors.js"
import { localState } from "../catalog/list-catalog.js"
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

/**
 * The default a `vm create` with no arguments uses: ok when it is local (by name, as `catalog list`
 * says), or in the catalog (then it is pulled on first use); fail only when neither, i.e. there is
 * no valid catalog to name one.
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
    const { local: state, localRef } = localState(entry, stored.right)
    if (state === "no") return ok(name, `${entry.name} (${entry.ref}) is pulled on first use`)
    return ok(
      name,
      `${entry.name} is local${state === "yes" ? "" : ` (from ${localRef ?? "local files"}, not ${entry.ref})`}`
    )
  })

export const checkDefaultKernel = (loaded: LoadedCatalog) =>
  Effect.flatMap(LocalArtifacts, (local) =>
    checkDefault("kernel", loaded, local.kernels, (catalog) => catalog.defaultKernel)
  )

export const checkDefaultImage = (loaded: LoadedCatalog) =>
  Effect.flatMap(LocalArtifacts, (local) =>
    checkDefault("image", loaded, local.images, (catalog) => catalog.defaultImage)
  )
