import { Command, HelpDoc, ValidationError } from "@effect/cli"
import { Console, Effect } from "effect"
import { VERSION } from "../version.js"
import { makeCatalogCommand } from "./catalog-commands.js"
import { defaultWebAddress, makeDaemonCommand } from "./daemon-command.js"
import { makeDoctorCommand } from "./doctor-command.js"
import { ExitCode } from "./exit-code.js"
import { makeImageCommand } from "./image-commands.js"
import { makeKernelCommand } from "./kernel-commands.js"
import { makeOpCommand } from "./op-commands.js"
import { jsonOption, rootCommand } from "./root-command.js"
import { makeUiCommand } from "./ui-command.js"
import { makeVmCommand } from "./vm-commands.js"

const subcommands = [
  makeImageCommand(jsonOption),
  makeKernelCommand(jsonOption),
  makeDaemonCommand(),
  makeOpCommand(jsonOption),
  makeCatalogCommand(jsonOption),
  makeVmCommand(jsonOption),
  makeDoctorCommand(jsonOption),
  makeUiCommand()
] as const

const subcommandNames = new Set<string>(["image", "kernel", "daemon", "op", "catalog", "vm", "doctor", "ui"])

const command = rootCommand.pipe(Command.withSubcommands(subcommands))

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
 * @effect/cli reads `banger --state-dir X --help` as a missing subcommand; the top-level help does
 * not depend on the global options, so it is asked for without them.
 */
const helpArgv = (argv: ReadonlyArray<string>): ReadonlyArray<string> => {
  const args = argv.slice(2)
  const end = args.indexOf("--")
  const own = end === -1 ? args : args.slice(0, end)
  const wantsHelp = own.includes("--help") || own.includes("-h")
  return wantsHelp && !own.some((arg) => subcommandNames.has(arg)) ? [...argv.slice(0, 2), "--help"] : argv
}

/** @effect/cli's own message for a rejected argument, as one line. */
const validationMessage = (error: ValidationError.ValidationError): string =>
  HelpDoc.toAnsiText(error.error)
    .replace(/\x1b\[[0-9;]*m/g, "")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "")
    .join(" ")

/** @effect/cli prints parse errors itself, multi-line and unprefixed: banger prints its own. */
const withoutCliErrorOutput = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Console.consoleWith((console) => Effect.withConsole(effect, { ...console, error: () => Effect.void }))

/**
 * Runs banger with `argv` (as in process.argv). Every failure, @effect/cli's argument errors too,
 * becomes one `banger: …` line on stderr (or a JSON error object with --json) and exit code 1.
 */
export const cli = (argv: ReadonlyArray<string>) =>
  withoutCliErrorOutput(runCommand(defaultWebAddress(helpArgv(argv)))).pipe(
    Effect.catchAll((error) =>
      Effect.gen(function* () {
        if (error instanceof ExitCode) return yield* Effect.fail(error.code)
        if (ValidationError.isValidationError(error) && ValidationError.isHelpRequested(error)) return
        const message = ValidationError.isValidationError(error) ? validationMessage(error) : errorMessage(error)
        if (argv.includes("--json")) {
          process.stdout.write(`${JSON.stringify({ error: { _tag: errorTag(error), message } })}\n`)
        } else {
          process.stderr.write(`banger: ${message}\n`)
        }
        return yield* Effect.fail(1)
      })
    )
  )
