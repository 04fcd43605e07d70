import { randomBytes } from "node:crypto"
import {
  Cause,
  Clock,
  Context,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Option,
  Schedule,
  Scope,
  Stream,
  SubscriptionRef
} from "effect"
import { OperationCancelled, OperationFailed, OperationNotFound, type StoreError } from "../domain/errors.js"
import { OperationStore } from "../layers/store/operation-store.js"
import type { PullEvent, PullProgress } from "../pipelines/pull/progress.js"
import {
  type BangerError,
  emptyProgress,
  type LayerStatus,
  type OperationKind,
  type OperationResult,
  OperationStatus
} from "../rpc/schemas.js"
import { collectGarbageSoon } from "./collect-garbage.js"

/** Short random hex ids: unique enough per state dir, easy to type. */
export const newOperationId = () => randomBytes(6).toString("hex")

export interface BeginSpec {
  /** Default: a fresh `newOperationId()`; given when the caller must name the operation before it begins. */
  readonly id?: string | undefined
  readonly kind: OperationKind
  /** What the operation makes (an image name); shown by `op list`. */
  readonly target: string
  /** The work; it reports through the given progress and runs in the daemon's scope, not the caller's. */
  readonly run: (progress: PullProgress["Type"]) => Effect.Effect<OperationResult, BangerError>
  /**
   * Asked when the work ends interrupted: an interrupt that lands during an uninterruptible commit
   * step (publish) is only seen after the commit, so the work may have finished after all.
   */
  readonly settleInterrupted?: Effect.Effect<Option.Option<OperationResult>> | undefined
  /** Runs once the final status is recorded (e.g. to release what `begin`'s caller reserved). */
  readonly onEnd?: Effect.Effect<void> | undefined
}

export interface OperationsShape {
  /** Records the operation as running, starts it, and answers at once. */
  readonly begin: (spec: BeginSpec) => Effect.Effect<OperationStatus, StoreError | OperationFailed>
  readonly status: (id: string) => Effect.Effect<OperationStatus, OperationNotFound | StoreError>
  /** The current status, then every update; ends with the final status. */
  readonly watch: (id: string) => Stream.Stream<OperationStatus, OperationNotFound | StoreError>
  /** Interrupts a running operation and answers after its rollback; a finished one is returned as is. */
  readonly cancel: (id: string) => Effect.Effect<OperationStatus, OperationNotFound | StoreError>
  readonly list: Effect.Effect<ReadonlyArray<OperationStatus>, StoreError>
  /** Drops operations that ended more than the TTL ago; answers how many records went. */
  readonly prune: Effect.Effect<number, StoreError>
  /** Interrupts every running operation (their rollback runs) and refuses new ones. */
  readonly shutdown: Effect.Effect<void>
}

export interface OperationsConfig {
  /** How long finished operations are kept. */
  readonly ttl: Duration.DurationInput
  /** How often the pruner looks; default: a quarter of the TTL, between 1 s and 1 min. */
  readonly pruneEvery?: Duration.DurationInput | undefined
}

/** How many operations `op list` shows at most. */
const LIST_LIMIT = 100
/** Progress updates are published at most this often (stage changes and finished layers always are). */
const PUBLISH_INTERVAL_MS = 100

interface Entry {
  readonly ref: SubscriptionRef.SubscriptionRef<OperationStatus>
  fiber: Fiber.RuntimeFiber<OperationResult, BangerError> | undefined
  cancelRequested: boolean
}

const isoAt = (millis: number) => new Date(millis).toISOString()
const nowIso = Effect.map(Clock.currentTimeMillis, isoAt)

const summarize = (layers: ReadonlyArray<LayerStatus | undefined>, layerCount: number) => {
  const reported = layers.filter((layer): layer is LayerStatus => layer !== undefined)
  return {
    layers: reported,
    layerCount,
    bytesDone: reported.reduce((sum, layer) => sum + layer.bytesDone, 0),
    bytesTotal: reported.reduce((sum, layer) => sum + layer.bytesTotal, 0)
  }
}

const pruneInterval = (config: OperationsConfig) => {
  if (config.pruneEvery !== undefined) return Duration.decode(config.pruneEvery)
  const quarter = Duration.toMillis(config.ttl) / 4
  return Duration.millis(Math.min(60_000, Math.max(1_000, quarter)))
}

const make = (config: OperationsConfig) =>
  Effect.gen(function* () {
    const store = yield* OperationStore
    const scope = yield* Effect.scope
    const entries = new Map<string, Entry>()
    let stopping = false

    // Whatever a previous daemon left running died with it; the recovery sweep removed its work.
    const endedAt = yield* nowIso
    for (const orphan of yield* store.running) {
      yield* store.save(
        new OperationStatus({
          ...orphan,
          state: "failed",
          error: new OperationFailed({
            id: orphan.id,
            reason: "the daemon stopped before it finished; its partial work was removed at the next start"
          }),
          endedAt
        })
      )
      yield* Effect.logWarning(`operation ${orphan.id} (${orphan.kind} ${orphan.target}) was orphaned; marked failed`)
    }

    const saveLogged = (status: OperationStatus) =>
      store
        .save(status)
        .pipe(Effect.catchAll((error) => Effect.logWarning(`cannot record operation ${status.id}: ${error.message}`)))

    const reporterFor = (entry: Entry): PullProgress["Type"] => {
      let layers: Array<LayerStatus | undefined> = []
      let layerCount = 0
      let lastPublish = 0
      let retries = 0
      const publish = (stage: Option.Option<string>) =>
        SubscriptionRef.updateAndGet(
          entry.ref,
          (status) =>
            new OperationStatus({
              ...status,
              stage: Option.getOrElse(stage, () => status.stage),
              progress: summarize(layers, layerCount)
            })
        )
      return {
        report: (event: PullEvent) =>
          Effect.gen(function* () {
            const now = yield* Clock.currentTimeMillis
            if (event._tag === "PhaseStarted") {
              // A new phase's layers and stages are its own (a kernel's, then an image's): the
              // last phase's final stage must not be replayed to watchers as this one's.
              layers = []
              layerCount = 0
              lastPublish = now
              const status = yield* SubscriptionRef.updateAndGet(
                entry.ref,
                (status) =>
                  new OperationStatus({
                    ...status,
                    stage: null,
                    phase: { phase: event.phase, name: event.name },
                    progress: summarize(layers, layerCount)
                  })
              )
              return yield* saveLogged(status)
            }
            if (event._tag === "Retrying") {
              retries++
              const { _tag, ...notice } = event
              const status = yield* SubscriptionRef.updateAndGet(
                entry.ref,
                (status) => new OperationStatus({ ...status, retry: { ...notice, count: retries } })
              )
              return yield* saveLogged(status)
            }
            if (event._tag === "StageStarted") {
              lastPublish = now
              const status = yield* publish(Option.some(event.stage))
              return yield* saveLogged(status)
            }
            layerCount = event.count
            layers[event.index] = {
              index: event.index,
              digest: event.digest,
              bytesDone: event.bytesDone,
              bytesTotal: event.bytesTotal,
              cached: event.cached
            }
            if (event.bytesDone < event.bytesTotal && now - lastPublish < PUBLISH_INTERVAL_MS) return
            lastPublish = now
            yield* publish(Option.none())
          })
      }
    }

    const outcome = (entry: Entry, id: string, exit: Exit.Exit<OperationResult, BangerError>, spec: BeginSpec) =>
      Effect.gen(function* () {
        if (Exit.isSuccess(exit)) return { state: "succeeded" as const, result: exit.value, error: null }
        const failure = Cause.failureOption(exit.cause)
        if (Option.isSome(failure)) return { state: "failed" as const, result: null, error: failure.value }
        if (Cause.isInterruptedOnly(exit.cause)) {
          const settled = spec.settleInterrupted ? yield* spec.settleInterrupted : Option.none()
          if (Option.isSome(settled)) return { state: "succeeded" as const, result: settled.value, error: null }
          if (entry.cancelRequested) {
            const error = new OperationCancelled({ id, reason: "cancelled on request; its work was rolled back" })
            return { state: "cancelled" as const, result: null, error }
          }
          const reason = "the daemon stopped before it finished; its work was rolled back"
          return { state: "failed" as const, result: null, error: new OperationFailed({ id, reason }) }
        }
        const reason = `internal error: ${Cause.pretty(exit.cause).split("\n")[0]}`
        yield* Effect.logError(`operation ${id} died`, exit.cause)
        return { state: "failed" as const, result: null, error: new OperationFailed({ id, reason }) }
      })

    const finish = (entry: Entry, id: string, exit: Exit.Exit<OperationResult, BangerError>, spec: BeginSpec) =>
      Effect.gen(function* () {
        const end = yield* outcome(entry, id, exit, spec)
        const endedAt = yield* nowIso
        const final = yield* SubscriptionRef.updateAndGet(
          entry.ref,
          (status) => new OperationStatus({ ...status, ...end, endedAt })
        )
        yield* saveLogged(final)
        yield* Effect.logInfo(`operation ${id} (${final.kind} ${final.target}) ${final.state}`)
        yield* collectGarbageSoon
      })

    const begin: OperationsShape["begin"] = (spec) =>
      Effect.gen(function* () {
        const id = spec.id ?? newOperationId()
        if (stopping) return yield* new OperationFailed({ id, reason: "the daemon is stopping" })
        const initial = new OperationStatus({
          id,
          kind: spec.kind,
          target: spec.target,
          state: "running",
          stage: null,
          progress: emptyProgress,
          result: null,
          error: null,
          startedAt: yield* nowIso,
          endedAt: null
        })
        yield* store.save(initial)
        const entry: Entry = { ref: yield* SubscriptionRef.make(initial), fiber: undefined, cancelRequested: false }
        entries.set(id, entry)
        entry.fiber = yield* spec.run(reporterFor(entry)).pipe(
          Effect.onExit((exit) => Effect.zipRight(finish(entry, id, exit, spec), spec.onEnd ?? Effect.void)),
          Effect.forkIn(scope)
        )
        yield* Effect.logInfo(`operation ${id} (${spec.kind} ${spec.target}) started`)
        return initial
      }).pipe(Effect.withSpan("Operations.begin", { attributes: { kind: spec.kind, target: spec.target } }))

    const status: OperationsShape["status"] = (id) =>
      Effect.suspend(() => {
        const entry = entries.get(id)
        if (entry) return SubscriptionRef.get(entry.ref)
        return store.find(id).pipe(
          Effect.flatMap(
            Option.match({
              onNone: () =>
                Effect.fail(new OperationNotFound({ id, reason: "unknown or already pruned (see banger op list)" })),
              onSome: Effect.succeed
            })
          )
        )
      })

    const watch: OperationsShape["watch"] = (id) =>
      Stream.unwrap(
        Effect.sync(() => entries.get(id)).pipe(
          Effect.flatMap((entry) =>
            entry
              ? Effect.succeed(entry.ref.changes.pipe(Stream.takeUntil((update) => update.state !== "running")))
              : Effect.map(status(id), (found) => Stream.make(found))
          )
        )
      )

    const cancel: OperationsShape["cancel"] = (id) =>
      Effect.gen(function* () {
        const entry = entries.get(id)
        if (!entry) return yield* status(id)
        const current = yield* SubscriptionRef.get(entry.ref)
        if (current.state === "running" && entry.fiber) {
          entry.cancelRequested = true
          yield* Fiber.interrupt(entry.fiber)
        }
        return yield* SubscriptionRef.get(entry.ref)
      }).pipe(Effect.withSpan("Operations.cancel", { attributes: { id } }))

    const list: OperationsShape["list"] = Effect.gen(function* () {
      const recorded = yield* store.list(LIST_LIMIT)
      return yield* Effect.forEach(recorded, (row) => {
        const entry = entries.get(row.id)
        return entry ? SubscriptionRef.get(entry.ref) : Effect.succeed(row)
      })
    })

    const prune: OperationsShape["prune"] = Effect.gen(function* () {
      const cutoff = isoAt((yield* Clock.currentTimeMillis) - Duration.toMillis(config.ttl))
      for (const [id, entry] of entries) {
        const current = yield* SubscriptionRef.get(entry.ref)
        if (current.endedAt !== null && current.endedAt < cutoff) entries.delete(id)
      }
      const removed = yield* store.pruneEndedBefore(cutoff)
      if (removed > 0) yield* Effect.logDebug(`pruned ${removed} finished operation(s)`)
      return removed
    })

    const shutdown: OperationsShape["shutdown"] = Effect.suspend(() => {
      stopping = true
      const running = [...entries.values()].flatMap((entry) => (entry.fiber ? [entry.fiber] : []))
      return Fiber.interruptAll(running)
    })

    yield* Scope.addFinalizer(scope, shutdown)
    yield* prune.pipe(
      Effect.catchAll((error) => Effect.logWarning(`pruning operations failed: ${error.message}`)),
      Effect.repeat(Schedule.spaced(pruneInterval(config))),
      Effect.forkIn(scope)
    )

    return { begin, status, watch, cancel, list, prune, shutdown } satisfies OperationsShape
  })

/** The daemon's long-running work: started, watched, cancelled and remembered for a while. */
export class Operations extends Context.Tag("banger/Operations")<Operations, OperationsShape>() {
  static readonly layer = (config: OperationsConfig) => Layer.scoped(Operations, make(config))
}
