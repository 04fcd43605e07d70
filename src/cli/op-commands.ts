import { Args, Command, type Options } from "@effect/cli"
import { Console, Effect } from "effect"
import { BangerClient } from "../rpc/client.js"
import type { OperationStatus } from "../rpc/schemas.js"
import {
  daemonClientLayer,
  describeResult,
  followOperation,
  progressRelay,
  requireSuccess,
  viaDaemon
} from "./daemon-client.js"
import { details, formatBytes, printJson, table } from "./output.js"
import { stderrPullProgress } from "./pull-progress.js"
import { rootCommand } from "./root-command.js"

/** Runs a command body against the daemon of the state dir given to `banger` (started if need be). */
export const withDaemon = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.flatMap(rootCommand, (root) => Effect.provide(body, daemonClientLayer(root.stateDir)))

export const formatProgress = (status: OperationStatus) => {
  const { layers, layerCount, bytesDone, bytesTotal } = status.progress
  if (layerCount === 0) return "-"
  const finished = layers.filter((layer) => layer.bytesDone >= layer.bytesTotal).length
  return `${formatBytes(bytesDone)} / ${formatBytes(bytesTotal)} (${finished}/${layerCount} layers)`
}

const outcome = (status: OperationStatus) => {
  if (status.result !== null) return describeResult(status.result)
  return status.error?.message ?? "-"
}

const statusFields = (status: OperationStatus) =>
  [
    ["id", status.id],
    ["kind", status.kind],
    ["target", status.target],
    ["state", status.state],
    ["phase", status.phase === null ? null : `${status.phase.phase} ${status.phase.name}`],
    ["stage", status.stage],
    ["progress", formatProgress(status)],
    ["started", status.startedAt],
    ["ended", status.endedAt],
    [status.state === "succeeded" ? "result" : "error", outcome(status)]
  ] as const

const idArg = Args.text({ name: "ID" }).pipe(Args.withDescription("operation id (see banger op list)"))

export const makeOpCommand = (json: Options.Options<boolean>) => {
  const list = Command.make("list", { json }, (options) =>
    withDaemon(
      Effect.gen(function* () {
        const client = yield* BangerClient
        const operations = yield* viaDaemon(client.op.list())
        if (options.json) return yield* printJson(operations)
        yield* Console.log(
          table(
            ["ID", "KIND", "TARGET", "STATE", "STAGE", "PROGRESS", "STARTED"],
            operations.map((op) => [
              op.id,
              op.kind,
              op.target,
              op.state,
              op.stage ?? "-",
              formatProgress(op),
              op.startedAt
            ])
          )
        )
      })
    )
  ).pipe(Command.withDescription("list running and recently finished operations"))

  const status = Command.make("status", { id: idArg, json }, (options) =>
    withDaemon(
      Effect.gen(function* () {
        const client = yield* BangerClient
        const found = yield* viaDaemon(client.op.status({ id: options.id }))
        if (options.json) return yield* printJson(found)
        yield* details(statusFields(found))
      })
    )
  ).pipe(Command.withDescription("show an operation's state, stage, progress and outcome"))

  const watch = Command.make("watch", { id: idArg, json }, (options) =>
    withDaemon(
      Effect.gen(function* () {
        if (options.json) {
          // One JSON status per line (NDJSON) as the operation goes, the final one last.
          const final = yield* followOperation(options.id, (update) => Console.log(JSON.stringify(update)))
          return yield* requireSuccess(final).pipe(Effect.asVoid)
        }
        const relay = yield* progressRelay
        const final = yield* followOperation(options.id, relay)
        const result = yield* requireSuccess(final)
        yield* Console.log(`operation ${final.id} succeeded: ${describeResult(result)}`)
      }).pipe(Effect.provide(stderrPullProgress))
    )
  ).pipe(Command.withDescription("follow an operation until it ends; fails with its error if it does not succeed"))

  const cancel = Command.make("cancel", { id: idArg, json }, (options) =>
    withDaemon(
      Effect.gen(function* () {
        const client = yield* BangerClient
        const final = yield* viaDaemon(client.op.cancel({ id: options.id }))
        if (options.json) return yield* printJson(final)
        yield* Console.log(`operation ${final.id} ${final.state}`)
      })
    )
  ).pipe(Command.withDescription("cancel a running operation; answers once its work is rolled back"))

  return Command.make("op").pipe(
    Command.withDescription("daemon operations (pulls): list, status, watch, cancel"),
    Command.withSubcommands([list, status, watch, cancel])
  )
}
