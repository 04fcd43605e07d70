import * as path from "node:path"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import { Console, Context, Effect, Layer, Option, Stream } from "effect"
import { ensureDaemon } from "../daemon/autostart.js"
import { daemonTarget } from "../daemon/spawn.js"
import { type DaemonNotRunning, DaemonUnavailable, OperationFailed } from "../domain/errors.js"
import { PullProgress } from "../pipelines/pull/progress.js"
import { BangerClient } from "../rpc/client.js"
import {
  Image,
  Kernel,
  type KernelPullPayload,
  type OperationResult,
  type OperationStatus,
  type PullPayload
} from "../rpc/schemas.js"
import { printJson } from "./output.js"
import { stderrPullProgress } from "./pull-progress.js"

/** The daemon does not share the CLI's working directory: paths cross the wire absolute. */
export const absolutePath = (file: Option.Option<string>): string | undefined =>
  Option.getOrUndefined(Option.map(file, (given) => path.resolve(given)))

/** The socket the CLI talks to, for error messages. */
export class DaemonSocket extends Context.Tag("banger/cli/DaemonSocket")<DaemonSocket, string>() {}

/** How long the daemon may take to answer its first call before the CLI gives up on it. */
const FIRST_ANSWER_TIMEOUT = "5 seconds"

/**
 * A client of the daemon for this state dir, starting one when none answers (unless
 * `BANGER_NO_AUTOSTART=1`). The first call is bounded, so a daemon that accepts but never answers
 * fails the command instead of hanging it.
 */
export const daemonClientLayer = (
  stateDirOption: Option.Option<string>,
  options: { readonly command?: ReadonlyArray<string> | undefined; readonly env?: NodeJS.ProcessEnv } = {}
): Layer.Layer<BangerClient | DaemonSocket, DaemonUnavailable | DaemonNotRunning> => {
  const env = options.env ?? process.env
  // The same resolution as bin/banger's early start, so that the CLI claims the daemon it started.
  const { stateDir, socket } = daemonTarget(Option.getOrUndefined(stateDirOption), env)
  const client = Layer.unwrapEffect(
    ensureDaemon({ stateDir, socket, autostart: env.BANGER_NO_AUTOSTART !== "1", command: options.command, env }).pipe(
      Effect.as(BangerClient.layer({ socket }))
    )
  )
  const checked = Layer.effectDiscard(
    Effect.flatMap(BangerClient, (connected) => connected.daemon.info()).pipe(
      Effect.timeoutFail({
        duration: FIRST_ANSWER_TIMEOUT,
        onTimeout: () => new DaemonUnavailable({ socket, reason: "it accepts connections but does not answer" })
      }),
      Effect.catchTag("RpcClientError", (error) => Effect.fail(unavailable(socket, error)))
    )
  )
  return Layer.mergeAll(checked.pipe(Layer.provideMerge(client)), Layer.succeed(DaemonSocket, socket))
}

const unavailable = (socket: string, error: RpcClientError) =>
  new DaemonUnavailable({ socket, reason: `lost the connection (${error.message})` })

/** Turns transport failures of a daemon call into one clear DaemonUnavailable. */
export const viaDaemon = <A, E, R>(call: Effect.Effect<A, E | RpcClientError, R>) =>
  Effect.flatMap(DaemonSocket, (socket) =>
    Effect.catchIf(
      call,
      (error): error is RpcClientError => error instanceof RpcClientError,
      (error) => Effect.fail(unavailable(socket, error))
    )
  )

export const viaDaemonStream = <A, E, R>(stream: Stream.Stream<A, E | RpcClientError, R>) =>
  Stream.unwrap(
    Effect.map(DaemonSocket, (socket) =>
      Stream.catchAll(
        stream,
        (error): Stream.Stream<never, E | DaemonUnavailable> =>
          error instanceof RpcClientError ? Stream.fail(unavailable(socket, error)) : Stream.fail(error as E)
      )
    )
  )

/** Replays a watch's status updates as the pipeline's progress events, for the CLI's progress renderers. */
export const progressRelay = Effect.gen(function* () {
  const progress = yield* PullProgress
  let stage: string | null = null
  let phase: string | null = null
  const seen = new Map<number, number>()
  let retries = 0
  return (status: OperationStatus) =>
    Effect.gen(function* () {
      const now = status.phase === null ? null : `${status.phase.phase} ${status.phase.name}`
      if (status.phase !== null && now !== phase) {
        phase = now
        stage = null
        seen.clear()
        yield* progress.report({ _tag: "PhaseStarted", ...status.phase })
      }
      if (status.stage !== null && status.stage !== stage) {
        stage = status.stage
        yield* progress.report({ _tag: "StageStarted", stage: status.stage as never })
      }
      if (status.retry !== null && status.retry.count !== retries) {
        retries = status.retry.count
        const { count: _, ...notice } = status.retry
        yield* progress.report({ _tag: "Retrying", ...notice })
      }
      for (const layer of status.progress.layers) {
        if (seen.get(layer.index) === layer.bytesDone) continue
        seen.set(layer.index, layer.bytesDone)
        yield* progress.report({ _tag: "LayerProgress", count: status.progress.layerCount, ...layer })
      }
    })
})

/** The operation's final status: the last element of its watch. */
export const followOperation = (
  id: string,
  onUpdate: (status: OperationStatus) => Effect.Effect<void> = () => Effect.void
) =>
  Effect.gen(function* () {
    const client = yield* BangerClient
    const last = yield* viaDaemonStream(client.op.watch({ id })).pipe(Stream.tap(onUpdate), Stream.runLast)
    if (Option.isNone(last))
      return yield* new OperationFailed({ id, reason: "the daemon ended the watch without a status" })
    return last.value
  })

/** Fails with the operation's own error unless it succeeded, so the CLI prints what the pipeline said. */
export const requireSuccess = (status: OperationStatus) =>
  status.state === "succeeded" && status.result !== null
    ? Effect.succeed(status.result)
    : Effect.fail(status.error ?? new OperationFailed({ id: status.id, reason: `ended ${status.state}` }))

/**
 * An operation begun through the daemon (`begin`), then (unless `detach`) followed with the live
 * progress on stderr. An interrupt (Ctrl-C) cancels the operation and waits for its rollback
 * before the CLI exits.
 */
export const runOperation = <E, R>(
  begin: Effect.Effect<OperationStatus, E | RpcClientError, R>,
  options: { readonly detach: boolean }
) =>
  Effect.gen(function* () {
    const client = yield* BangerClient
    const begun = yield* viaDaemon(begin)
    if (options.detach) return { _tag: "Detached", operation: begun } as const
    const relay = yield* progressRelay
    const final = yield* followOperation(begun.id, relay).pipe(
      Effect.onInterrupt(() =>
        viaDaemon(client.op.cancel({ id: begun.id })).pipe(
          Effect.tap((status) => Console.error(`cancelled operation ${status.id} (${status.state})`)),
          Effect.ignore
        )
      )
    )
    return { _tag: "Finished", result: yield* requireSuccess(final) } as const
  }).pipe(Effect.provide(stderrPullProgress))

/** `banger image pull` through the daemon (see `runOperation`); a finished pull answers its image. */
export const pullViaDaemon = (payload: PullPayload, options: { readonly detach: boolean }) =>
  Effect.gen(function* () {
    const client = yield* BangerClient
    const outcome = yield* runOperation(client.image.pull(payload), options)
    if (outcome._tag === "Detached") return outcome
    if (!(outcome.result instanceof Image)) {
      return yield* new OperationFailed({ id: "-", reason: "the pull did not answer an image" })
    }
    return { _tag: "Finished", image: outcome.result } as const
  })

/** `banger kernel pull` through the daemon (see `runOperation`); a finished pull answers its kernel. */
export const kernelPullViaDaemon = (payload: KernelPullPayload, options: { readonly detach: boolean }) =>
  Effect.gen(function* () {
    const client = yield* BangerClient
    const outcome = yield* runOperation(client.kernel.pull(payload), options)
    if (outcome._tag === "Detached") return outcome
    if (!(outcome.result instanceof Kernel)) {
      return yield* new OperationFailed({ id: "-", reason: "the pull did not answer a kernel" })
    }
    return { _tag: "Finished", kernel: outcome.result } as const
  })

/** One line saying what a finished operation made. */
export const describeResult = (result: OperationResult) =>
  result instanceof Image
    ? `${result.name} → ${result.rootfs}`
    : result instanceof Kernel
      ? `kernel ${result.name} → ${result.kernel}`
      : `VM ${result.name} ${result.state}`

/** How the CLI prints a detached pull: the id for people, the status for scripts. */
export const printDetached = (operation: OperationStatus, json: boolean) =>
  json ? printJson(operation) : Console.log(operation.id)
