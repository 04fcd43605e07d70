import * as path from "node:path"
import { Command, Options } from "@effect/cli"
import { Deferred, Duration, Effect, Either, Exit, Layer, Logger, LogLevel, Option } from "effect"
import { runDaemon } from "../daemon/run.js"
import { DaemonStartError } from "../domain/errors.js"
import { defaultStateDir } from "../layers/state/state-paths.js"
import { defaultSocketPath } from "../rpc/client.js"
import { rootCommand } from "./root-command.js"

const logLevels = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  none: LogLevel.None
} as const

const units: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `90s`, `10m`, `24h`, `7d`, `500ms`, or plain seconds. */
export const parseDuration = (input: string): Either.Either<Duration.Duration, string> => {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(input.trim())
  if (!match) return Either.left(`invalid duration "${input}" (use e.g. 90s, 10m, 24h, 7d)`)
  return Either.right(Duration.millis(Number(match[1]) * units[match[2] ?? "s"]!))
}

/** Stderr, logfmt: one structured line per event, readable by people and log collectors. */
const stderrLogger = (level: LogLevel.LogLevel) =>
  Layer.merge(
    Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)),
    Logger.minimumLogLevel(level)
  )

/**
 * Runs until SIGTERM or SIGINT, then stops cleanly and succeeds. The CLI's runtime would turn a
 * signal into an interrupt (exit 130); a daemon told to stop exits 0, so it takes the signals over.
 */
const serveUntilSignal = <E>(serve: Effect.Effect<never, E>) =>
  Effect.gen(function* () {
    const stop = yield* Deferred.make<NodeJS.Signals>()
    const onSignal = (signal: NodeJS.Signals) => Deferred.unsafeDone(stop, Exit.succeed(signal))
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        process.removeAllListeners("SIGINT")
        process.removeAllListeners("SIGTERM")
        process.on("SIGINT", onSignal)
        process.on("SIGTERM", onSignal)
      }),
      () =>
        Effect.sync(() => {
          process.off("SIGINT", onSignal)
          process.off("SIGTERM", onSignal)
        })
    )
    const signal = yield* Effect.raceFirst(serve, Deferred.await(stop))
    yield* Effect.logInfo(`received ${signal}; stopped`)
    // Nothing should be left to keep the process alive; if something is, do not linger on it.
    setTimeout(() => process.exit(0), 3_000).unref()
  }).pipe(Effect.scoped)

export const makeDaemonCommand = () =>
  Command.make(
    "daemon",
    {
      socket: Options.file("socket", { exists: "either" }).pipe(
        Options.withDescription("Unix socket to serve (default: $BANGER_SOCKET, else <state>/banger.sock)"),
        Options.optional
      ),
      group: Options.text("group").pipe(
        Options.withDescription("let this group use the socket (mode 0660; default owner only, 0600)"),
        Options.optional
      ),
      logLevel: Options.choice("log-level", ["trace", "debug", "info", "warning", "error", "none"]).pipe(
        Options.withDescription("minimum level of the logs written to stderr"),
        Options.withDefault("info" as const)
      ),
      operationTtl: Options.text("op-ttl").pipe(
        Options.withDescription("how long finished operations are kept (e.g. 30m, 24h, 7d)"),
        Options.withDefault("24h")
      )
    },
    (options) =>
      Effect.gen(function* () {
        const root = yield* rootCommand
        const stateDir = path.resolve(Option.getOrElse(root.stateDir, () => defaultStateDir()))
        const socket = path.resolve(Option.getOrElse(options.socket, () => defaultSocketPath(stateDir)))
        const ttl = parseDuration(options.operationTtl)
        if (Either.isLeft(ttl)) return yield* new DaemonStartError({ reason: `--op-ttl: ${ttl.left}` })
        const daemon = runDaemon({
          stateDir,
          socket,
          group: Option.getOrUndefined(options.group),
          operationTtl: ttl.right
        })
        yield* serveUntilSignal(daemon).pipe(Effect.provide(stderrLogger(logLevels[options.logLevel])))
      })
  ).pipe(Command.withDescription("serve the banger API on a Unix socket; owns the state dir"))
