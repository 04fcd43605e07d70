import { Effect } from "effect"

/**
 * One permit per key, created on demand and dropped when its last user leaves, so a long-lived
 * daemon does not collect a semaphore per digest it has ever seen.
 */
export const makeKeyedLock = () => {
  const entries = new Map<string, { readonly semaphore: Effect.Semaphore; users: number }>()
  return <A, E, R>(key: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        let entry = entries.get(key)
        if (entry === undefined) {
          entry = { semaphore: Effect.unsafeMakeSemaphore(1), users: 0 }
          entries.set(key, entry)
        }
        entry.users++
        return entry
      }),
      (entry) => entry.semaphore.withPermits(1)(effect),
      (entry) =>
        Effect.sync(() => {
          entry.users--
          if (entry.users === 0) entries.delete(key)
        })
    )
}
