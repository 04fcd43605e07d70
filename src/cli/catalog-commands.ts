import { Command, type Options } from "@effect/cli"
import { Console, Effect } from "effect"
import type { LocalState } from "../domain/catalog-listing.js"
import { BangerClient } from "../rpc/client.js"
import { viaDaemon } from "./daemon-client.js"
import { withDaemon } from "./op-commands.js"
import { printJson, table } from "./output.js"
import { requestedCatalog, rootCommand } from "./root-command.js"

const localLabel: Record<LocalState, string> = { no: "no", yes: "yes", "other-ref": "yes, other ref" }

const defaultMark = (isDefault: boolean) => (isDefault ? "*" : "")

export const makeCatalogCommand = (json: Options.Options<boolean>) => {
  const list = Command.make("list", { json }, (options) =>
    withDaemon(
      Effect.gen(function* () {
        const root = yield* rootCommand
        const client = yield* BangerClient
        const listing = yield* viaDaemon(client.catalog.list({ catalog: requestedCatalog(root.catalog) }))
        if (options.json) return yield* printJson(listing)
        yield* Console.log(`catalog: ${listing.source}\n\nKERNELS`)
        yield* Console.log(
          table(
            ["NAME", "REF", "DEFAULT", "LOCAL", "DESCRIPTION"],
            listing.kernels.map((kernel) => [
              kernel.name,
              kernel.ref,
              defaultMark(kernel.default),
              localLabel[kernel.local],
              kernel.description
            ])
          )
        )
        yield* Console.log("\nIMAGES")
        yield* Console.log(
          table(
            ["NAME", "REF", "DEFAULT", "LOCAL", "KERNEL", "DESCRIPTION"],
            listing.images.map((image) => [
              image.name,
              image.ref,
              defaultMark(image.default),
              localLabel[image.local],
              image.kernel,
              image.description
            ])
          )
        )
      })
    )
  ).pipe(
    Command.withDescription(
      "list the catalog's kernels and images (--catalog or $BANGER_CATALOG, else the built-in one), defaults marked *, and whether each is already local"
    )
  )

  return Command.make("catalog").pipe(
    Command.withDescription("known-good kernels and images banger can pull by name"),
    Command.withSubcommands([list])
  )
}
