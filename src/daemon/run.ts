import { NodeContext } from "@effect/platform-node"
import { Deferred, Effect, Exit, Layer } from "effect"
import { appLayer } from "../app/app-layer.js"
import { pullKernel } from "../pipelines/kernel/pull-kernel.js"
import { pullImage } from "../pipelines/pull/pull.js"
import { type DaemonConfig, daemonLayer } from "./server.js"

/** The real daemon: the pipeline's own services for the state dir, serving until interrupted. */
export const runDaemon = (config: DaemonConfig) =>
  Layer.launch(
    daemonLayer(config, appLayer(config.stateDir).pipe(Layer.provideMerge(NodeContext.layer)), pullImage, pullKernel)
  )

/**
 * Runs until SIGTERM or SIGINT, then stops cleanly and succeeds. The CLI's runtime would turn a
 * signal into an interrupt (exit 130); a daemon told to stop exits 0, so it takes the signals over.
 */
export const serveUntilSignal = <E>(serve: Effect.Effect<never, E>) =>
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
