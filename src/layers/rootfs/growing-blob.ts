/**
 * A layer blob that is still downloading, read while it arrives so that flattening overlaps the
 * download. The downloader reports its temp file, the bytes written to it so far and its outcome;
 * the reader reads up to what is written and waits for more. The blob only counts once the
 * download verified it: a reader that fails on the way (a corrupt blob fails gunzip before its
 * digest is checked) reports the download's own failure instead of its own.
 */
import * as fs from "node:fs/promises"
import { Cause, Effect, Exit, Option, type Scope } from "effect"
import type { DigestMismatch, RegistryError } from "../../domain/errors.js"
import { FilesystemError } from "../../domain/errors.js"
import { type BlobReader, readAt } from "./blob-reader.js"

export type DownloadError = RegistryError | DigestMismatch | FilesystemError

/** The download's typed failure; an interrupted or dead download reads as a filesystem failure of the blob. */
const failureOf = (exit: Exit.Failure<string, DownloadError>): DownloadError =>
  Option.getOrElse(
    Cause.failureOption(exit.cause),
    () => new FilesystemError({ path: "blob", reason: `download did not finish: ${Cause.pretty(exit.cause)}` })
  )

export class GrowingBlob {
  private tempFile: string | undefined
  private written = 0
  private outcome: Exit.Exit<string, DownloadError> | undefined
  private readonly waiters = new Set<() => void>()

  /** `size`: the blob's size from its descriptor. */
  constructor(readonly size: number) {}

  private wake() {
    for (const waiter of [...this.waiters]) waiter()
  }

  // The downloader's side.

  /** The temp file the download writes to (it exists from now on, until renamed or removed). */
  readonly started = (file: string) =>
    Effect.sync(() => {
      this.tempFile = file
      this.wake()
    })

  /** Bytes written to the temp file so far (written, not just received). */
  readonly progress = (bytes: number) =>
    Effect.sync(() => {
      if (bytes > this.written) this.written = bytes
      this.wake()
    })

  /** The download's outcome: the verified blob's path, or why there is none. */
  readonly finish = (exit: Exit.Exit<string, DownloadError>) =>
    Effect.sync(() => {
      this.outcome = exit
      this.wake()
    })

  // The reader's side.

  /** Until `ready` holds, re-checked whenever the downloader reports something. */
  private until<A>(ready: () => A | undefined): Effect.Effect<A> {
    return Effect.async<A>((resume) => {
      const check = () => {
        const value = ready()
        if (value === undefined) return false
        this.waiters.delete(waiter)
        resume(Effect.succeed(value))
        return true
      }
      const waiter = () => void check()
      if (check()) return
      this.waiters.add(waiter)
      return Effect.sync(() => void this.waiters.delete(waiter))
    })
  }

  /** The verified blob's path once the download succeeded; its failure if it failed. */
  readonly done: Effect.Effect<string, DownloadError> = Effect.flatMap(
    this.until(() => this.outcome),
    (exit) => (Exit.isSuccess(exit) ? Effect.succeed(exit.value) : Effect.fail(failureOf(exit)))
  )

  /**
   * Reads the compressed bytes in order as they arrive, each into the caller's buffer. Fails with
   * the download's failure (or a read error); gives 0 once all `size` bytes have been read, which
   * can be before the download has checked, synced and renamed the blob: its verdict comes through
   * `done`, which the pull waits for before it publishes anything. The file stays open until the
   * scope closes.
   */
  readonly reader = (): Effect.Effect<BlobReader<DownloadError>, DownloadError, Scope.Scope> =>
    Effect.gen(this, function* () {
      const handle = yield* Effect.acquireRelease(this.open(), (handle) => Effect.promise(() => handle.close()))
      let position = 0
      const read = (into: Uint8Array): Effect.Effect<number, DownloadError> =>
        Effect.suspend(() => {
          const outcome = this.outcome
          if (outcome !== undefined && Exit.isFailure(outcome)) return Effect.fail(failureOf(outcome))
          const end = outcome === undefined ? this.written : this.size
          if (position >= end) {
            // All `size` bytes are written once `written` gets there (the downloader takes no more):
            // the end, without waiting for the download to sync and rename the blob.
            if (outcome !== undefined || position >= this.size) return Effect.succeed(0)
            return Effect.flatMap(
              this.until(() => (this.outcome !== undefined || this.written > position ? true : undefined)),
              () => read(into)
            )
          }
          return Effect.map(
            readAt(handle, into, Math.min(into.length, end - position), position, (error) => this.readError(error)),
            (bytesRead) => {
              position += bytesRead
              return bytesRead
            }
          )
        })
      return { read }
    })

  /**
   * The blob's file, opened, if every byte of it is already written (its download finished before
   * its layer's turn came), so that a child decompressor can read it by itself; undefined while
   * bytes are still arriving. The download's verdict still comes through `done`.
   */
  readonly openIfComplete = (): Effect.Effect<fs.FileHandle | undefined, DownloadError, Scope.Scope> =>
    Effect.suspend(() => {
      const outcome = this.outcome
      if (outcome !== undefined && Exit.isFailure(outcome)) return Effect.fail(failureOf(outcome))
      if (outcome === undefined && this.written < this.size) return Effect.succeed(undefined)
      return Effect.acquireRelease(this.open(), (handle) => Effect.promise(() => handle.close()))
    })

  private readError(error: unknown) {
    return new FilesystemError({
      path: this.tempFile ?? "blob",
      reason: `reading the downloading blob: ${error instanceof Error ? error.message : String(error)}`
    })
  }

  /**
   * The temp file, or the verified blob when the download ended before it could be opened (it is
   * renamed on success, removed on failure).
   */
  private open(): Effect.Effect<fs.FileHandle, DownloadError> {
    return Effect.gen(this, function* () {
      const known = yield* this.until(() => this.outcome ?? this.tempFile)
      if (typeof known === "string") {
        const handle = yield* Effect.tryPromise(() => fs.open(known, "r")).pipe(Effect.option)
        if (Option.isSome(handle)) return handle.value
      }
      const path = yield* this.done
      return yield* Effect.tryPromise({
        try: () => fs.open(path, "r"),
        catch: (error) => new FilesystemError({ path, reason: error instanceof Error ? error.message : String(error) })
      })
    })
  }
}
