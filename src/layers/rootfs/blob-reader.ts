/**
 * Sequential reads of a compressed blob into a buffer the caller owns, so that a decompressor fed
 * from one reused buffer allocates nothing per read (a pull reads ~70 MiB of blobs, which were
 * ~70 MiB of garbage when each read had a buffer of its own).
 */
import type * as fs from "node:fs/promises"
import { Effect } from "effect"

export interface BlobReader<E> {
  /** Reads the next bytes into `into` from its start; how many, 0 at the end of the blob. */
  readonly read: (into: Uint8Array) => Effect.Effect<number, E>
}

/**
 * Exactly-there bytes: `length` (> 0) bytes at `position` are known to be in the file, so reading
 * none is an error, not an end.
 */
export const readAt = <E>(
  handle: fs.FileHandle,
  into: Uint8Array,
  length: number,
  position: number,
  onError: (error: unknown) => E
): Effect.Effect<number, E> =>
  Effect.tryPromise({ try: () => handle.read(into, 0, length, position), catch: onError }).pipe(
    Effect.flatMap(({ bytesRead }) =>
      bytesRead === 0
        ? Effect.fail(onError(new Error(`unexpected end of file at ${position}`)))
        : Effect.succeed(bytesRead)
    )
  )

/** A complete file, read from its start to its end. */
export const fileReader = <E>(handle: fs.FileHandle, onError: (error: unknown) => E): BlobReader<E> => {
  let position = 0
  return {
    read: (into) =>
      Effect.map(
        Effect.tryPromise({ try: () => handle.read(into, 0, into.length, position), catch: onError }),
        ({ bytesRead }) => {
          position += bytesRead
          return bytesRead
        }
      )
  }
}
