import { FileSystem } from "@effect/platform"
import { Context, Effect, Either, Layer, ParseResult, Schema } from "effect"
import { Catalog, CatalogFile } from "../../domain/catalog.js"
import { CatalogInvalid } from "../../domain/errors.js"
import { parseReferenceEither, validateImageName } from "../pull/parse-reference.js"

/**
 * The catalog this daemon uses when a request names none: `BANGER_CATALOG` or `--catalog` as it
 * started, else the `catalog.json` shipped in the package (see `builtinCatalogPath`).
 */
export class DefaultCatalogPath extends Context.Tag("banger/DefaultCatalogPath")<DefaultCatalogPath, string>() {
  static readonly layer = (file: string) => Layer.succeed(DefaultCatalogPath, file)
}

type Entry = { readonly name: string }

/** Where an entry sits, for errors: `images[1] (dev)`. */
const entryLabel = (list: "kernels" | "images", index: number, entry: Entry) => `${list}[${index}] (${entry.name})`

/** The first broken rule across entries, or nothing: names, refs, kernels named by images, defaults. */
const checkRules = (file: string, catalog: typeof CatalogFile.Type): CatalogInvalid | undefined => {
  const invalid = (entry: string, field: string, reason: string) =>
    new CatalogInvalid({ path: file, entry, field, reason })
  for (const list of ["kernels", "images"] as const) {
    const entries: ReadonlyArray<Entry & { readonly ref: string; readonly default: boolean }> = catalog[list]
    const seen = new Map<string, number>()
    let defaultAt: number | undefined
    for (const [index, entry] of entries.entries()) {
      const label = entryLabel(list, index, entry)
      const badName = Either.getLeft(Effect.runSync(Effect.either(validateImageName(entry.name))))
      if (badName._tag === "Some") return invalid(label, "name", badName.value.reason)
      const previous = seen.get(entry.name)
      if (previous !== undefined) return invalid(label, "name", `duplicate name (also ${list}[${previous}])`)
      seen.set(entry.name, index)
      const ref = parseReferenceEither(entry.ref)
      if (Either.isLeft(ref)) return invalid(label, "ref", `invalid reference "${entry.ref}": ${ref.left}`)
      if (entry.default) {
        if (defaultAt !== undefined) {
          return invalid(
            label,
            "default",
            `a second default (${entryLabel(list, defaultAt, entries[defaultAt]!)} is one)`
          )
        }
        defaultAt = index
      }
    }
    if (defaultAt === undefined && entries.length > 0) {
      return invalid(list, "default", `exactly one of the ${list} must be the default; none is`)
    }
    if (entries.length === 0) return invalid(list, "", `the catalog lists no ${list}`)
  }
  for (const [index, image] of catalog.images.entries()) {
    if (!catalog.kernels.some((kernel) => kernel.name === image.kernel)) {
      return invalid(entryLabel("images", index, image), "kernel", `no catalog kernel is named "${image.kernel}"`)
    }
  }
  return undefined
}

const decode = Schema.decodeUnknownEither(CatalogFile, { onExcessProperty: "error", errors: "first" })

/** `entry.field: reason` from the first schema issue, for one-line errors. */
const describeParseError = (file: string, error: ParseResult.ParseError): CatalogInvalid => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  const at = issue?.path ?? []
  const list = at[0]
  const index = at[1]
  const entry = list === undefined ? "" : index === undefined ? String(list) : `${String(list)}[${String(index)}]`
  const field = at.slice(2).map(String).join(".")
  return new CatalogInvalid({ path: file, entry, field, reason: issue?.message ?? error.message })
}

/** Reads and validates a catalog file; any problem is one `CatalogInvalid` naming the entry and field. */
export const readCatalog = Effect.fn("readCatalog")(function* (file: string) {
  const fs = yield* FileSystem.FileSystem
  const text = yield* fs.readFileString(file).pipe(
    Effect.mapError(
      (error) =>
        new CatalogInvalid({
          path: file,
          entry: "",
          field: "",
          reason: error._tag === "SystemError" && error.reason === "NotFound" ? "no such file" : error.message
        })
    )
  )
  const json = yield* Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: (error) => new CatalogInvalid({ path: file, entry: "", field: "", reason: `not JSON: ${String(error)}` })
  })
  const parsed = decode(json)
  if (Either.isLeft(parsed)) return yield* describeParseError(file, parsed.left)
  const broken = checkRules(file, parsed.right)
  if (broken) return yield* broken
  return new Catalog({ source: file, kernels: parsed.right.kernels, images: parsed.right.images })
})

/** The catalog a request asks for (`file`, from a client's --catalog), else the daemon's default. */
export const loadCatalog = Effect.fn("loadCatalog")(function* (file?: string | undefined) {
  return yield* readCatalog(file ?? (yield* DefaultCatalogPath))
})
