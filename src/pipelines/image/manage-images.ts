import { FileSystem } from "@effect/platform"
import { Effect, Option } from "effect"
import { ImageInUse, ImageNotFound } from "../../domain/errors.js"
import { StatePaths } from "../../layers/state/state-paths.js"
import { Store } from "../../layers/store/store.js"

export const listImages = Effect.flatMap(Store, (store) => store.images.list)

export const showImage = Effect.fn("showImage")(function* (name: string) {
  const store = yield* Store
  const image = yield* store.images.find(name)
  if (Option.isNone(image)) return yield* new ImageNotFound({ name, reason: "see banger image list" })
  return image.value
})

/**
 * Drops the row first: a crash halfway leaves an orphan dir, which the recovery sweep removes.
 * Files go only with a managed image (as the deleted row says, so a promote that committed in the
 * meantime is seen); an unmanaged image's files are the user's and stay where they are.
 */
export const deleteImage = Effect.fn("deleteImage")(function* (name: string) {
  const store = yield* Store
  const fs = yield* FileSystem.FileSystem
  const paths = yield* StatePaths
  const existing = yield* store.images.find(name)
  if (Option.isSome(existing)) {
    const vms = yield* store.vms.usingImage(existing.value.id)
    if (vms.length > 0) {
      return yield* new ImageInUse({ name, vms, reason: "delete those VMs first (their disks were made from it)" })
    }
  }
  const removed = yield* store.images.remove(name)
  if (Option.isNone(removed)) return yield* new ImageNotFound({ name, reason: "see banger image list" })
  const image = removed.value
  if (image.managed) {
    yield* fs.remove(paths.imageDir(image.id), { recursive: true, force: true }).pipe(Effect.ignoreLogged)
  }
  return image
})
