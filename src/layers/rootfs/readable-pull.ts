/**
 * A Node Readable (gunzip's output, zstd's stdout) as a `Pull` for the byte reader: each call
 * takes the chunks that have arrived, waiting only when there are none, and the stream is paused
 * while chunks wait to be taken, so at most a chunk or two are in flight.
 *
 * Not Effect's stream adapters: consumed through `Stream.runForEach`, or through `Stream.toPull`
 * behind `Stream.interruptWhen`, `Stream.timeoutFail` or `Stream.map`/`filter`/`tap`, every chunk
 * outlived the young-generation GCs (measured: ArrayBuffer memory only ever fell at full GCs), so a pull's
 * ~200 MiB of decompressed chunks piled up to V8's 64 MiB external-memory trigger, again and again.
 */
import type { Readable } from "node:stream"
import { Effect } from "effect"
import type { Pull } from "./byte-reader.js"

export interface ReadablePull<E> {
  readonly pull: Pull<E>
  /** Fails the pull from outside (the readable's producer failed), waking a waiting pull. */
  readonly fail: (error: E) => void
}

export const readablePull = <E>(readable: Readable, onError: (error: unknown) => E): ReadablePull<E> => {
  let arrived: Array<Uint8Array> = []
  let ended = false
  let failure: { readonly error: E } | undefined
  let wake: (() => void) | undefined
  const notify = () => {
    const waiting = wake
    wake = undefined
    waiting?.()
  }
  readable.on("data", (chunk: Uint8Array) => {
    arrived.push(chunk)
    readable.pause()
    notify()
  })
  readable.once("end", () => {
    ended = true
    notify()
  })
  // `on`, not `once`: an error event nobody listens to would throw.
  readable.on("error", (error) => {
    failure ??= { error: onError(error) }
    notify()
  })

  const ready = () => failure !== undefined || ended || arrived.length > 0
  const arrival = Effect.async<void>((resume) => {
    if (ready()) return resume(Effect.void)
    wake = () => resume(Effect.void)
    return Effect.sync(() => {
      wake = undefined
    })
  })

  const pull: Pull<E> = Effect.suspend(function next(): Pull<E> {
    if (failure !== undefined) return Effect.fail(failure.error)
    if (arrived.length > 0) {
      const chunks = arrived
      arrived = []
      readable.resume()
      return Effect.succeed(chunks)
    }
    if (ended) return Effect.succeed(undefined)
    return Effect.flatMap(arrival, next)
  })

  return {
    pull,
    fail: (error) => {
      failure ??= { error }
      notify()
    }
  }
}
