/**
 * Exact-size reads over a pull-based byte stream, for a parser that needs "the next 512 bytes"
 * while the decompressor hands out chunks of whatever size. Only the chunks in flight are buffered,
 * so memory stays bounded whatever the layer's size.
 *
 * Besides the effectful reads, the buffered bytes can be taken synchronously: a parser that works
 * through what is buffered and pulls (`fill`) only when it runs out costs one effect per chunk
 * instead of several per tar entry.
 *
 * What the reader hands out is a view of the pulled chunks, valid until its next fill: a chunk it
 * has moved past goes back to the source then (`release`), to be read into again. Whatever a
 * caller keeps across a fill, it copies.
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
  /** Pulls once more into the buffer; `false` once the stream has ended. */
  readonly fill: Effect.Effect<boolean, E>
  /** Bytes that can be taken now without pulling. */
  readonly buffered: () => number
  /** True once the stream has ended: what is buffered is all there is. */
  readonly ended: () => boolean
  /** Exactly `n` buffered bytes; the caller checks `buffered() >= n` (and `n > 0`). */
  readonly takeBuffered: (n: number) => Uint8Array
  /** Between 1 and `max` buffered bytes, never crossing a chunk; the caller checks `buffered() > 0`. */
  readonly takeSomeBuffered: (max: number) => Uint8Array
  /** The error for a stream that ends where more bytes must follow. */
  readonly truncated: () => E
}

/** Gives a pulled chunk back to its source, which may read into it again. */
export type Release = (chunk: Uint8Array) => void

/** A pull whose chunks go back to it once read (see `Release`). */
export interface PullSource<E> {
  readonly pull: Pull<E>
  readonly release: Release
}

export const makeByteReader = <E>(pull: Pull<E>, truncated: () => E, release?: Release): ByteReader<E> => {
  const queue: Array<Uint8Array> = []
  let buffered = 0
  let ended = false
  /** Chunks moved past since the last fill: views of them may still be in use until the next one. */
  const spent: Array<Uint8Array> = []

  const releaseSpent = () => {
    if (release !== undefined) for (const chunk of spent) release(chunk)
    spent.length = 0
  }

  const fill: Effect.Effect<boolean, E> = Effect.suspend(() => {
    releaseSpent()
    return ended
      ? Effect.succeed(false)
      : Effect.map(pull, (chunks) => {
          if (chunks === undefined) {
            ended = true
            return false
          }
          for (const chunk of chunks) {
            if (chunk.length === 0) continue
            // As a plain view: a Buffer's subarray is node's own (a JS constructor call each),
            // a Uint8Array's is V8's, and the reader cuts two views per header and per file.
            queue.push(Buffer.isBuffer(chunk) ? new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length) : chunk)
            buffered += chunk.length
          }
          return true
        })
  })

  /** Bytes of `queue[0]` already taken: one view per take, not a view taken and a view kept. */
  let headTaken = 0

  const shiftHead = (): Uint8Array => {
    const head = queue.shift()!
    spent.push(head)
    const rest = headTaken === 0 ? head : head.subarray(headTaken)
    headTaken = 0
    return rest
  }

  // Caller guarantees `buffered >= n`.
  const take = (n: number): Uint8Array => {
    buffered -= n
    const first = queue[0]!
    const left = first.length - headTaken
    if (left === n) return shiftHead()
    if (left > n) {
      headTaken += n
      return first.subarray(headTaken - n, headTaken)
    }
    const parts: Array<Uint8Array> = []
    let need = n
    while (need > 0) {
      const available = queue[0]!.length - headTaken
      if (available <= need) {
        parts.push(shiftHead())
        need -= available
      } else {
        parts.push(queue[0]!.subarray(headTaken, headTaken + need))
        headTaken += need
        need = 0
      }
    }
    return Buffer.concat(parts)
  }

  const takeSome = (max: number) => take(Math.min(max, queue[0]!.length - headTaken))

  const readExact = (n: number): Effect.Effect<Uint8Array | undefined, E> =>
    Effect.suspend(() => {
      if (buffered >= n) return Effect.succeed(take(n))
      return Effect.flatMap(fill, (more) => {
        if (more) return readExact(n)
        if (buffered === 0) return Effect.succeed(undefined)
        return Effect.fail(truncated())
      })
    })

  const readSome = (max: number): Effect.Effect<Uint8Array, E> =>
    Effect.suspend(() => {
      if (buffered > 0) return Effect.succeed(takeSome(max))
      return Effect.flatMap(fill, (more) => (more ? readSome(max) : Effect.fail(truncated())))
    })

  const skip = (n: number): Effect.Effect<void, E> =>
    Effect.suspend(() => {
      let left = n
      while (left > 0 && buffered > 0) left -= takeSome(left).length
      if (left === 0) return Effect.void
      return Effect.flatMap(fill, (more) => (more ? skip(left) : Effect.fail(truncated())))
    })

  const drop = () => {
    for (const chunk of queue) spent.push(chunk)
    queue.length = 0
    headTaken = 0
    buffered = 0
  }

  const drain = Effect.gen(function* () {
    drop()
    while (yield* fill) drop()
    releaseSpent()
  })

  return {
    readExact,
    readSome,
    skip,
    drain,
    fill,
    buffered: () => buffered,
    ended: () => ended,
    takeBuffered: take,
    takeSomeBuffered: takeSome,
    truncated
  }
}
