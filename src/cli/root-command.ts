import { Command, Options } from "@effect/cli"

/** Options every subcommand shares; read in handlers with `yield* rootCommand`. */
export const rootCommand = Command.make("banger", {
  stateDir: Options.directory("state-dir").pipe(
    Options.withDescription(
      "state directory (default: $BANGER_STATE_DIR, /var/lib/banger as root, else ~/.local/share/banger)"
    ),
    Options.optional
  )
})

export const jsonOption = Options.boolean("json").pipe(Options.withDescription("print machine-readable JSON"))
