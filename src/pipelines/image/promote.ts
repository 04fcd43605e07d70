import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { Effect, Option } from "effect"
import { FilesystemError, ImageNotPromotable } from "../../domain/errors.js"
import type { Image } from "../../domain/image.js"
import { DiskCopy } from "../../layers/disk/disk-copy.js"
import { StatePaths } from "../../layers/state/state-paths.js"
import { Store, type StoredFiles } from "../../layers/store/store.js"
import { releaseLease } from "../pull/lease.js"
import { reportStage } from "../pull/progress.js"
import { ROOTFS_FILE } from "../pull/pull.js"
import { BootArtifactNames } from "../pull/stage-boot.js"
import { acquireStaging } from "../pull/staging.js"
import { showImage } from "./manage-images.js"
import { verifySources } from "./source-files.js"

/** The image, when it can be promoted now: unmanaged, and every file of it as registered. */
export const checkPromotable = Effect.fn("checkPromotable")(function* (name: string) {
  const image = yield* showImage(name)
  if (image.managed) {
    return yield* new ImageNotPromotable({ name, reason: "it is already managed (its files are in the store)" })
  }
  yield* verifySources(image)
  return image
})

/**
 * The image's files into `dir`, named as a pull names them: rootfs and kernel files through
 * DiskCopy (a reflink, else a sparse copy), the modules tree file by file.
 */
const copySources = Effect.fn("copySources")(function* (image: Image, dir: string) {
  const disk = yield* DiskCopy
  const fs = yield* FileSystem.FileSystem
  const into = (name: string) => path.join(dir, name)
  yield* disk.copy(image.rootfs, into(ROOTFS_FILE))
  yield* disk.copy(image.kernel, into(BootArtifactNames.kernel))
  if (image.initrd !== null) yield* disk.copy(image.initrd, into(BootArtifactNames.initrd))
  if (image.modules !== null) {
    yield* fs
      .copy(image.modules, into(BootArtifactNames.modules), { preserveTimestamps: true })
      .pipe(
        Effect.mapError(
          (error) => new FilesystemError({ path: image.modules!, reason: `cannot copy: ${error.message}` })
        )
      )
  }
})

const storedFiles = (image: Image, dir: string): StoredFiles => ({
  rootfs: path.join(dir, ROOTFS_FILE),
  kernel: path.join(dir, BootArtifactNames.kernel),
  initrd: image.initrd === null ? null : path.join(dir, BootArtifactNames.initrd),
  modules: image.modules === null ? null : path.join(dir, BootArtifactNames.modules)
})

/**
 * Renames the staging dir into place, then flips the row to managed with the new paths, as one
 * uninterruptible step: if the row is gone (deleted meanwhile) or the update fails, the dir goes.
 */
const commitPromotion = Effect.fn("commitPromotion")(function* (image: Image, stagingDir: string) {
  const fs = yield* FileSystem.FileSystem
  const store = yield* Store
  const paths = yield* StatePaths
  const finalDir = paths.imageDir(image.id)
  const removeFinal = fs.remove(finalDir, { recursive: true, force: true }).pipe(Effect.ignoreLogged)
  return yield* Effect.uninterruptible(
    Effect.gen(function* () {
      yield* fs
        .rename(stagingDir, finalDir)
        .pipe(Effect.mapError((error) => new FilesystemError({ path: finalDir, reason: error.message })))
      const updated = yield* store.images
        .markManaged(image.id, storedFiles(image, finalDir))
        .pipe(Effect.tapError(() => removeFinal))
      if (Option.isNone(updated)) {
        yield* removeFinal
        return yield* new ImageNotPromotable({
          name: image.name,
          reason: "it was deleted or promoted while its files were being copied"
        })
      }
      yield* releaseLease(fs, finalDir).pipe(Effect.ignoreLogged)
      return updated.value
    })
  )
})

/**
 * `banger image promote`: copies an unmanaged image's files into the store through a staging dir
 * (removed on any failure or cancel), then makes it managed. The sources are checked before and
 * after the copy, so a file written to meanwhile is refused rather than copied half-changed.
 */
export const promoteImage = Effect.fn("promoteImage")(function* (name: string) {
  yield* reportStage("inspect")
  const image = yield* checkPromotable(name)
  return yield* Effect.scoped(
    Effect.gen(function* () {
      const staging = yield* acquireStaging()
      yield* reportStage("copy")
      yield* copySources(image, staging.dir)
      yield* verifySources(image)
      yield* reportStage("publish")
      return yield* commitPromotion(image, staging.dir)
    })
  )
})
