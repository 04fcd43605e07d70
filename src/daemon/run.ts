import { FileSystem } from "@effect/platform"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Deferred, type Duration, Effect, Exit, Layer, Option } from "effect"
import { appLayer } from "../app/app-layer.js"
import { pullKernel } from "../pipelines/kernel/pull-kernel.js"
import { pullImage } from "../pipelines/pull/pull.js"
import { type DaemonConfig, daemonLayer } from "./server.js"
import { takeOverSignals } from "./signals.js"

/**
 * Returns once `stateDir` is gone or replaced by another directory (`rm -rf` of a test's or a
 * user's state): a daemon whose database and artifacts were deleted has nothing left to serve,
 * and would otherwise linger forever holding a socket nobody can find.
 */
export const stateDirRemoved = (stateDir: string, every: Duration.DurationInput = "2 seconds") =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    // The daemon may still be creating it: only a directory once seen can be removed or replaced.
    const identity = fs.stat(stateDir).pipe(
      Effect.map((info) => `${info.dev}:${Option.getOrElse(info.ino, () => 0)}`),
      Effect.catchAll((error) =>
        // Only its absence counts; any other stat error (EACCES, EIO) is not a reason to quit.
        Effect.succeed(error._tag === "SystemError" && error.reason === "NotFound" ? null : undefined)
      )
    )
    let seen: string | undefined
    while (true) {
      const now = yield* identity
      if (seen !== undefined && now === null) return `the state directory ${stateDir} was removed`
      if (seen !== undefined && typeof now === "string" && now !== seen) {
        return `the state directory ${stateDir} was replaced`
      }
      if (typeof now === "string") seen = now
      yield* Effect.sleep(every)
    }
  })

/**
 * The real daemon: the pipeline's own services for the state dir, serving until interrupted or
 * until the state dir disappears (then it succeeds with why it stopped).
 */
export const runDaemon = (config: DaemonConfig) =>
  Effect.raceFirst(
    Layer.launch(
      daemonLayer(
        config,
        appLayer(config.stateDir, { subnet: config.subnet, transfer: config.transfer }).pipe(
          Layer.provideMerge(NodeContext.layer)
        ),
        pullImage,
        pullKernel
      )
    ),
    stateDirRemoved(config.stateDir).pipe(Effect.provide(NodeContext.layer))
  )

/**
 * Runs until SIGTERM or SIGINT (or until `serve` ends, with why), then stops cleanly and succeeds.
 * The CLI's runtime would turn a signal into an interrupt (exit 130); a daemon told to stop exits
 * 0, so it takes the signals over.
 */
export const serveUntilSignal = <E>(serve: Effect.Effect<string, E>) =>
  Effect.gen(function* () {
    const stop = yield* Deferred.make<NodeJS.Signals>()
    const onSignal = (signal: NodeJS.Signals) => Deferred.unsafeDone(stop, Exit.succeed(signal))
    yield* Effect.acquireRelease(
      Effect.sync(() => takeOverSignals(onSignal)),
      (release) => Effect.sync(release)
    )
    const reason = yield* Effect.raceFirst(
      serve,
      Deferred.await(stop).pipe(Effect.map((signal) => `received ${signal}`))
    )
    yield* Effect.logInfo(`${reason}; stopped`)
    // Nothing should be left to keep the process alive; if something is, do not linger on it.
    setTimeout(() => process.exit(0), 3_000).unref()
  }).pipe(Effect.scoped)
