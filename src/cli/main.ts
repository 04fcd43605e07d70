import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Layer, Logger, LogLevel, Option } from "effect"
import { cli } from "./cli.js"

/** stdout is for results (tables, --json); logs go to stderr, warnings and worse unless asked. */
const logging = Layer.merge(
  Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)),
  Logger.minimumLogLevel(LogLevel.Warning)
)

const program = cli(process.argv).pipe(
  Effect.provide(Layer.merge(NodeContext.layer, logging)),
  Effect.catchAllDefect((defect) => {
    process.stderr.write(`banger: internal error: ${defect instanceof Error ? defect.stack : String(defect)}\n`)
    return Effect.fail(70)
  })
)

/** The failure value is the exit code; an interrupt (Ctrl-C, SIGTERM) exits 130 like a shell would. */
const exitCode = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit)) return 0
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure) && typeof failure.value === "number") return failure.value
  return Cause.isInterruptedOnly(exit.cause) ? 130 : 1
}

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  teardown: (exit, onExit) => onExit(exitCode(exit))
})
