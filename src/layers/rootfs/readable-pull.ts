/**
 * A Node Readable (gunzip's output) or a decompressor child's pipe (`pipePull`) as a `Pull` for
 * the byte reader: each call takes the chunks that have arrived, waiting only when there are none,
 * and the stream is paused while QUEUED_CHUNKS wait to be taken, so few are ever in flight.
 *
 * Not Effect's stream adapters: consumed through `Stream.runForEach`, or through `Stream.toPull`
 * behind `Stream.interruptWhen`, `Stream.timeoutFail` or `Stream.map`/`filter`/`tap`, every chunk
 * outlived the young-generation GCs (measured: ArrayBuffer memory only ever fell at full GCs), so a pull's
 * ~200 MiB of decompressed chunks piled up to V8's 64 MiB external-memory trigger, again and again.
 */
import * as net from "node:net"
import type { Readable } from "node:stream"
import { Effect } from "effect"
import type { Pull } from "./byte-reader.js"
import type { ChunkPool } from "./chunk-pool.js"

/**
 * Chunks that may arrive before the stream is paused. Not one: a pull then finds several when the
 * parser is the slower side, one round of effects for them all, and the stream is paused and
 * resumed (two epoll_ctl calls) a quarter as often (dev-80k: 253 scavenges, 564 ms, with one;
 * 253, 498 ms, with four).
 */
const QUEUED_CHUNKS = 4

export interface ReadablePull<E> {
  readonly pull: Pull<E>
  /** Fails the pull from outside (the readable's producer failed), waking a waiting pull. */
  readonly fail: (error: E) => void
}

export const readablePull = <E>(readable: Readable, onError: (error: unknown) => E): ReadablePull<E> => {
  const queued = queuedPull(readable, onError)
  readable.on("data", queued.arrive)
  return queued
}

/**
 * A pipe's read end, read into `pool`'s buffers, as a pull: chunks go back to the pool through
 * `pool.release` (the byte reader's `release`). The socket is the caller's to destroy.
 */
export const pipePull = <E>(
  fd: number,
  pool: ChunkPool,
  onError: (error: unknown) => E
): ReadablePull<E> & { readonly socket: net.Socket } => {
  const onread = {
    buffer: pool.take,
    callback: (length: number, buffer: Uint8Array) => {
      queued.arrive(buffer.subarray(0, length))
      return false
    }
  }
  // Node reads into `onread.buffer` when the constructor is given one, as `connect` documents.
  const options: net.SocketConstructorOpts & net.ConnectOpts = { fd, readable: true, writable: false, onread }
  const socket = new net.Socket(options)
  const queued = queuedPull(socket, onError)
  return { ...queued, socket }
}

/** Chunks queued as they arrive, the readable paused until they are pulled. */
const queuedPull = <E>(
  readable: Readable,
  onError: (error: unknown) => E
): ReadablePull<E> & { readonly arrive: (chunk: Uint8Array) => void } => {
  let arrived: Array<Uint8Array> = []
  let ended = false
  let failure: { readonly error: E } | undefined
  let wake: (() => void) | undefined
  const notify = () => {
    const waiting = wake
    wake = undefined
    waiting?.()
  }
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
    },
    arrive: (chunk) => {
      arrived.push(chunk)
      if (arrived.length >= QUEUED_CHUNKS) readable.pause()
      notify()
    }
  }
}
