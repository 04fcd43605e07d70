import { FileSystem } from "@effect/platform"
import { Context, Effect, Layer, Option } from "effect"
import { FilesystemError, ImageNameTaken } from "../../domain/errors.js"
import type { Image } from "../../domain/image.js"
import { Store } from "../../layers/store/store.js"
import { releaseLease } from "./lease.js"

/** Serializes the name check + rename + insert, so two pulls of one name cannot both publish. */
export class PublishLock extends Context.Tag("banger/PublishLock")<PublishLock, Effect.Semaphore>() {
  static readonly layer = Layer.effect(PublishLock, Effect.makeSemaphore(1))
}

export const ensureNameFree = Effect.fn("ensureNameFree")(function* (name: string) {
  const store = yield* Store
  const existing = yield* store.images.find(name)
  if (Option.isSome(existing)) {
    return yield* new ImageNameTaken({ name, reason: "pick another --name or delete the existing image first" })
  }
})

/**
 * Atomically renames the staging dir to its final place, then records the row. Uninterruptible:
 * once the rename happened, either the row lands or the final dir is removed again.
 */
export const publishImage = Effect.fn("publishImage")(function* (stagingDir: string, finalDir: string, image: Image) {
  const fs = yield* FileSystem.FileSystem
  const store = yield* Store
  const lock = yield* PublishLock
  return yield* lock.withPermits(1)(
    Effect.gen(function* () {
      yield* ensureNameFree(image.name)
      yield* fs
        .rename(stagingDir, finalDir)
        .pipe(Effect.mapError((error) => new FilesystemError({ path: finalDir, reason: error.message })))
      yield* store.images
        .insert(image)
        .pipe(Effect.tapError(() => fs.remove(finalDir, { recursive: true, force: true }).pipe(Effect.ignoreLogged)))
      yield* releaseLease(fs, finalDir).pipe(Effect.ignoreLogged)
      return image
    }).pipe(Effect.uninterruptible)
  )
})
