import * as path from "node:path"
import { Command, Options } from "@effect/cli"
import { Option } from "effect"

/** Options every subcommand shares; read in handlers with `yield* rootCommand`. */
export const rootCommand = Command.make("banger", {
  stateDir: Options.directory("state-dir").pipe(
    Options.withDescription(
      "state directory (default: $BANGER_STATE_DIR, /var/lib/banger as root, else ~/.local/share/banger)"
    ),
    Options.optional
  ),
  // Text: the daemon reads it with this user's rights (Options.file's own check dies on EACCES).
  catalog: Options.text("catalog").pipe(
    Options.withDescription("catalog file replacing the built-in one (default: $BANGER_CATALOG)"),
    Options.optional
  )
})

export const detachOption = Options.boolean("detach").pipe(
  Options.withDescription("print the operation id and return at once (follow it with banger op watch)")
)

export const jsonOption = Options.boolean("json").pipe(Options.withDescription("print machine-readable JSON"))

/**
 * The catalog a request names: `--catalog`, else `$BANGER_CATALOG`, made absolute (the daemon
 * does not share our working directory); undefined leaves the daemon's default.
 */
export const requestedCatalog = (
  given: Option.Option<string>,
  env: NodeJS.ProcessEnv = process.env
): string | undefined => {
  const file = Option.getOrElse(given, () => env.BANGER_CATALOG || undefined)
  return file === undefined ? undefined : path.resolve(file)
}
