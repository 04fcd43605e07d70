/**
 * Exact-size reads over a pull-based byte stream, for a parser that needs "the next 512 bytes"
 * while the decompressor hands out chunks of whatever size. Only the chunks in flight are buffered,
 * so memory stays bounded whatever the layer's size.
 */
import { Effect } from "effect"

/** Pulls the next chunks; `undefined` once the stream has ended. */
export type Pull<E> = Effect.Effect<ReadonlyArray<Uint8Array> | undefined, E>

export interface ByteReader<E> {
  /** Exactly `n` bytes; `undefined` when the stream ended cleanly at this point; `truncated` if mid-way. */
  readonly readExact: (n: number) => Effect.Effect<Uint8Array | undefined, E>
  /** Between 1 and `max` bytes; `truncated` if the stream has ended. */
  readonly readSome: (max: number) => Effect.Effect<Uint8Array, E>
  readonly skip: (n: number) => Effect.Effect<void, E>
  /** Reads (and discards) everything left, so the whole stream passes through the pull's observers. */
  readonly drain: Effect.Effect<void, E>
}

export const makeByteReader = <E>(pull: Pull<E>, truncated: () => E): ByteReader<E> => {
  const queue: Array<Uint8Array> = []
  let buffered = 0
  let ended = false

  const fill: Effect.Effect<boolean, E> = Effect.suspend(() =>
    ended
      ? Effect.succeed(false)
      : Effect.map(pull, (chunks) => {
          if (chunks === undefined) {
            ended = true
            return false
          }
          for (const chunk of chunks) {
            if (chunk.length === 0) continue
            queue.push(chunk)
            buffered += chunk.length
          }
          return true
        })
  )

  // Caller guarantees `buffered >= n`.
  const take = (n: number): Uint8Array => {
    buffered -= n
    const first = queue[0]!
    if (first.length === n) return queue.shift()!
    if (first.length > n) {
      queue[0] = first.subarray(n)
      return first.subarray(0, n)
    }
    const parts: Array<Uint8Array> = []
    let need = n
    while (need > 0) {
      const chunk = queue[0]!
      if (chunk.length <= need) {
        parts.push(queue.shift()!)
        need -= chunk.length
      } else {
        parts.push(chunk.subarray(0, need))
        queue[0] = chunk.subarray(need)
        need = 0
      }
    }
    return Buffer.concat(parts)
  }

  const readExact = (n: number) =>
    Effect.gen(function* () {
      while (buffered < n) {
        if (!(yield* fill)) {
          if (buffered === 0) return undefined
          return yield* Effect.fail(truncated())
        }
      }
      return take(n)
    })

  const readSome = (max: number) =>
    Effect.gen(function* () {
      while (buffered === 0) {
        if (!(yield* fill)) return yield* Effect.fail(truncated())
      }
      return take(Math.min(max, queue[0]!.length))
    })

  const skip = (n: number) =>
    Effect.gen(function* () {
      let left = n
      while (left > 0) left -= (yield* readSome(left)).length
    })

  const drain = Effect.gen(function* () {
    queue.length = 0
    buffered = 0
    while (yield* fill) {
      queue.length = 0
      buffered = 0
    }
  })

  return { readExact, readSome, skip, drain }
}
