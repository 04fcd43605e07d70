import { Clock, Data, Duration, Effect, Option, Stream } from "effect"
import { RegistryError } from "../../domain/errors.js"
import type { Descriptor } from "../../domain/oci.js"
import { parseDigest } from "./digest.js"
import { drain, type RegistryTarget } from "./http.js"
import { reportRetry } from "./retry-report.js"
import { expectStatus, type Transport } from "./transport.js"

export interface BlobStreamOptions {
  /** Consecutive failures without a single new byte before giving up. */
  readonly attempts: number
  /** Reconnections per blob in all, so a server that keeps dying cannot keep us forever. */
  readonly maxResumes: number
  readonly baseDelay: Duration.DurationInput
  /** A body that sends nothing for this long counts as a dropped connection. */
  readonly idleTimeout: Duration.DurationInput
  /**
   * Most time a blob may spend waiting on silent connections, all reconnects together: a server
   * that keeps stalling is given up on after this, however many reconnects remain. A slow but
   * steady body never counts against it.
   */
  readonly stallBudget: Duration.DurationInput
}

/** The body broke off after the response started; resumable with a Range request. */
class Cut extends Data.TaggedError("Cut")<{ readonly reason: string; readonly stalled?: boolean }> {}

const causeMessage = (error: { readonly cause?: unknown }): string => {
  let current: unknown = error.cause
  for (let depth = 0; depth < 5; depth++) {
    const next = (current as { cause?: unknown } | undefined)?.cause
    if (typeof next !== "object" || next === null) break
    current = next
  }
  return current instanceof Error ? current.message : String(current)
}

/** What to do with each chunk of a blob's body, in order; a failure stops the download. */
export type OnChunk<E> = (chunk: Uint8Array) => Effect.Effect<void, E>

/**
 * Reads a blob as stored, handing each chunk to `onChunk` as it arrives and resuming with
 * `Range: bytes=<received>-` when the connection drops mid-body (servers that ignore Range get the
 * already-received prefix skipped). Nothing is buffered beyond the chunk in flight.
 *
 * The body is read with a plain pull loop, and the idle timeout is one watchdog per connection:
 * through per-chunk stream operators (map, filter, tap, timeoutFail) or a per-chunk race, every
 * chunk outlived young-generation GCs (measured), so a download's ~70 MiB of network chunks stayed
 * in memory until the next full GC.
 */
export const makeBlobReader =
  (transport: Transport, options: BlobStreamOptions) =>
  <E>(target: RegistryTarget, descriptor: Descriptor, onChunk: OnChunk<E>): Effect.Effect<void, RegistryError | E> =>
    Effect.suspend(() => {
      const fail = (reason: string) => new RegistryError({ reference: target.reference, reason })
      if (parseDigest(descriptor.digest) === undefined) {
        return Effect.fail(fail(`invalid blob digest "${descriptor.digest}"`))
      }
      const url = `${target.baseUrl}/v2/${target.repository}/blobs/${descriptor.digest}`
      const idleMillis = Duration.toMillis(Duration.decode(options.idleTimeout))
      const budgetMillis = Duration.toMillis(Duration.decode(options.stallBudget))
      /** Milliseconds spent on connections that went silent, counted when each is given up on. */
      let lostToStalls = 0
      let received = 0
      let resumes = 0
      let failuresWithoutProgress = 0

      /** One connection, from `received` to the end of the body; `Cut` if it breaks off first. */
      const connection: Effect.Effect<void, RegistryError | Cut | E> = Effect.scoped(
        Effect.gen(function* () {
          const start = received
          const followed = yield* transport.get(target, url, start > 0 ? { range: `bytes=${start}-` } : {})
          const response = yield* expectStatus(
            target,
            followed,
            `blob ${descriptor.digest}`,
            start > 0 ? [200, 206] : [200]
          )
          let skip = 0
          if (response.status === 206) {
            const range = /^bytes (\d+)-/.exec(response.headers["content-range"] ?? "")
            if (range === null || Number(range[1]) !== start) {
              yield* drain(response)
              return yield* fail(`${followed.url.host} answered a resume at byte ${start} with the wrong range`)
            }
          } else {
            // Range ignored: the body starts over, so skip what was already passed on.
            skip = start
          }
          const pull = yield* Stream.toPull(response.stream)
          /** When the wait for the next chunk began; undefined while a chunk is being handled. */
          let waitingSince: number | undefined
          const read = Effect.gen(function* () {
            while (true) {
              waitingSince = yield* Clock.currentTimeMillis
              const chunks = yield* Effect.catchAll(pull, (error) =>
                Option.isNone(error)
                  ? Effect.succeed(undefined)
                  : Effect.fail(new Cut({ reason: causeMessage(error.value) }))
              )
              waitingSince = undefined
              if (chunks === undefined) return
              for (const whole of chunks) {
                const dropped = Math.min(skip, whole.length)
                skip -= dropped
                const chunk = dropped === 0 ? whole : whole.subarray(dropped)
                if (chunk.length === 0) continue
                received += chunk.length
                failuresWithoutProgress = 0
                yield* onChunk(chunk)
              }
            }
          })
          // The last silence may be cut short so the stalls together never exceed the budget.
          const limit = Math.max(1, Math.min(idleMillis, budgetMillis - lostToStalls))
          const watchdog = Effect.gen(function* () {
            while (true) {
              const now = yield* Clock.currentTimeMillis
              const since = waitingSince
              if (since !== undefined && now - since >= limit) {
                lostToStalls += now - since
                return yield* new Cut({
                  reason: `no data for ${Duration.format(options.idleTimeout)}`,
                  stalled: true
                })
              }
              yield* Effect.sleep(Duration.millis(since === undefined ? limit : since + limit - now))
            }
          })
          yield* Effect.raceFirst(read, watchdog)
        })
      )

      const attempt: Effect.Effect<void, RegistryError | E> = Effect.catchIf(
        connection,
        (error): error is Cut => error instanceof Cut,
        (cut) => {
          failuresWithoutProgress++
          resumes++
          const progress = `${received} of ${descriptor.size} bytes of blob ${descriptor.digest}`
          if (cut.stalled && lostToStalls >= budgetMillis) {
            return Effect.fail(
              fail(
                `blob ${descriptor.digest} stalled after ${received} of ${descriptor.size} bytes: ${cut.reason} (${resumes} tries; the ${Duration.format(options.stallBudget)} stall budget is spent)`
              )
            )
          }
          if (failuresWithoutProgress >= options.attempts || resumes > options.maxResumes) {
            return Effect.fail(
              fail(`connection lost after ${progress}: ${cut.reason} (gave up after ${resumes} reconnects)`)
            )
          }
          const delay = Duration.times(Duration.decode(options.baseDelay), 2 ** (failuresWithoutProgress - 1))
          return Effect.zipRight(
            reportRetry({ reason: cut.reason, attempt: failuresWithoutProgress + 1, of: options.attempts }),
            Effect.zipRight(Effect.sleep(delay), attempt)
          )
        }
      )

      return attempt
    })
