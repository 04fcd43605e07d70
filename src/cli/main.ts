import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Option } from "effect"
import { cli } from "./cli.js"

const program = cli(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  Effect.catchAllDefect((defect) => {
    process.stderr.write(`banger: internal error: ${defect instanceof Error ? defect.stack : String(defect)}\n`)
    return Effect.fail(70)
  })
)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  // The failure value is the exit code; an interrupt (Ctrl-C) exits 130 like a shell would.
  teardown: (exit, onExit) =>
    onExit(
      Exit.isSuccess(exit)
        ? 0
        : Option.getOrElse(Cause.failureOption(exit.cause), () => (Cause.isInterruptedOnly(exit.cause) ? 130 : 1))
    )
})
