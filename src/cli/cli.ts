import { Command, ValidationError } from "@effect/cli"
import { Effect } from "effect"
import { VERSION } from "../version.js"
import { makeCatalogCommand } from "./catalog-commands.js"
import { makeDaemonCommand } from "./daemon-command.js"
import { makeDoctorCommand } from "./doctor-command.js"
import { ExitCode } from "./exit-code.js"
import { makeImageCommand } from "./image-commands.js"
import { makeKernelCommand } from "./kernel-commands.js"
import { makeOpCommand } from "./op-commands.js"
import { jsonOption, rootCommand } from "./root-command.js"
import { makeVmCommand } from "./vm-commands.js"

const command = rootCommand.pipe(
  Command.withSubcommands([
    makeImageCommand(jsonOption),
    makeKernelCommand(jsonOption),
    makeDaemonCommand(),
    makeOpCommand(jsonOption),
    makeCatalogCommand(jsonOption),
    makeVmCommand(jsonOption),
    makeDoctorCommand(jsonOption)
  ])
)

const runCommand = Command.run(command, { name: "banger", version: VERSION })

/** The one-line rendering of any failure; the same text whether the error came from here or a daemon. */
export const errorMessage = (error: unknown): string => {
  if (error instanceof Error) return error.message
  if (typeof error === "object" && error !== null && "message" in error) return String(error.message)
  return String(error)
}

const errorTag = (error: unknown): string =>
  typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : "UnknownError"

/**
 * Runs banger with `argv` (as in process.argv). Failures become one `banger: …` line on stderr
 * (or a JSON error object with --json) and exit code 1; parse errors are printed by @effect/cli.
 */
export const cli = (argv: ReadonlyArray<string>) =>
  runCommand(argv).pipe(
    Effect.catchAll((error) =>
      Effect.gen(function* () {
        if (error instanceof ExitCode) return yield* Effect.fail(error.code)
        if (ValidationError.isValidationError(error)) {
          if (ValidationError.isHelpRequested(error)) return
          return yield* Effect.fail(1)
        }
        if (argv.includes("--json")) {
          process.stdout.write(
            `${JSON.stringify({ error: { _tag: errorTag(error), message: errorMessage(error) } })}\n`
          )
        } else {
          process.stderr.write(`banger: ${errorMessage(error)}\n`)
        }
        return yield* Effect.fail(1)
      })
    )
  )
