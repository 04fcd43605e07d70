import { Effect, FiberRef } from "effect"

/** One retry the registry client is about to make, for the progress a user watches. */
export interface RetryNotice {
  /** Why the last try failed, in words (`no data for 30s`). */
  readonly reason: string
  /** The try about to start, counting the first (so 2 is the first retry). */
  readonly attempt: number
  /** The most tries there will be. */
  readonly of: number
}

/**
 * Who hears about retries. A FiberRef rather than a service or a parameter: the caller that knows
 * what is being fetched ("layer 2/3") sets it around its call with `Effect.locally`, and the retry
 * loops deep inside the client report to whoever that is, without the client knowing progress exists.
 */
export const retryReporter: FiberRef.FiberRef<(notice: RetryNotice) => Effect.Effect<void>> = FiberRef.unsafeMake(
  (_notice: RetryNotice): Effect.Effect<void> => Effect.void
)

export const reportRetry = (notice: RetryNotice): Effect.Effect<void> =>
  Effect.flatMap(FiberRef.get(retryReporter), (report) => report(notice))
