import { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import type { Catalog } from "../../domain/catalog.js"
import { DefaultCatalogPath, loadCatalog } from "./load-catalog.js"

/**
 * Whether `input` can name a catalog entry at all. Catalog names are plain names (`a-z0-9._-`), so
 * anything with `/`, `:` or `@` is a reference the user meant as one, and never reads the catalog.
 */
export const couldBeCatalogName = (input: string) => !/[/:@]/.test(input)

/**
 * The catalog to look plain names up in: the request's (errors propagate), else the daemon's
 * default — absent only when its file does not exist (an install without one: plain names are
 * then references); a default that exists but is broken is still an error.
 */
export const catalogForLookup = Effect.fn("catalogForLookup")(function* (file: string | undefined) {
  if (file !== undefined) return yield* loadCatalog(file)
  const fs = yield* FileSystem.FileSystem
  const fallback = yield* DefaultCatalogPath
  if (!(yield* fs.exists(fallback).pipe(Effect.orElseSucceed(() => false)))) return undefined
  return yield* loadCatalog(fallback)
})

/** `findKernel`/`findImage` over a plain name; undefined when it is not one or no entry matches. */
export const lookupCatalog = Effect.fn("lookupCatalog")(function* <A>(
  input: string,
  file: string | undefined,
  find: (catalog: Catalog, name: string) => A | undefined
) {
  if (!couldBeCatalogName(input)) return undefined
  const catalog = yield* catalogForLookup(file)
  return catalog === undefined ? undefined : find(catalog, input)
})
