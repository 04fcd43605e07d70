import { randomUUID } from "node:crypto"
import { FileSystem } from "@effect/platform"
import { Effect, Option } from "effect"
import { FilesystemError, KernelNameTaken } from "../../domain/errors.js"
import type { Kernel } from "../../domain/image.js"
import { StatePaths } from "../../layers/state/state-paths.js"
import { Store } from "../../layers/store/store.js"
import { releaseLease, writeLease } from "../pull/lease.js"
import { PublishLock } from "../pull/publish.js"

/**
 * `<state>/kernels/.staging-<id>`, leased to this process and removed when the scope closes unless
 * publish renamed it away; a crash leaves it to the recovery sweep.
 */
export const acquireKernelStaging = Effect.fn("acquireKernelStaging")(function* () {
  const fs = yield* FileSystem.FileSystem
  const paths = yield* StatePaths
  const dir = paths.kernelStagingDir(randomUUID().replaceAll("-", "").slice(0, 16))
  return yield* Effect.acquireRelease(
    fs.makeDirectory(paths.kernels, { recursive: true }).pipe(
      Effect.zipRight(fs.makeDirectory(dir)),
      Effect.zipRight(writeLease(fs, dir)),
      Effect.as(dir),
      Effect.mapError((error) => new FilesystemError({ path: dir, reason: error.message }))
    ),
    () => fs.remove(dir, { recursive: true, force: true }).pipe(Effect.ignoreLogged)
  )
})

export const ensureKernelNameFree = Effect.fn("ensureKernelNameFree")(function* (name: string) {
  const store = yield* Store
  if (Option.isSome(yield* store.kernels.find(name))) {
    return yield* new KernelNameTaken({ name, reason: "pick another --name or delete the existing kernel first" })
  }
})

/** Rename then row, uninterruptibly: either both land or the final dir is removed again. */
export const publishKernel = Effect.fn("publishKernel")(function* (stagingDir: string, kernel: Kernel) {
  const fs = yield* FileSystem.FileSystem
  const store = yield* Store
  const paths = yield* StatePaths
  const lock = yield* PublishLock
  const finalDir = paths.kernelDir(kernel.name)
  return yield* lock.withPermits(1)(
    Effect.gen(function* () {
      yield* ensureKernelNameFree(kernel.name)
      yield* fs
        .rename(stagingDir, finalDir)
        .pipe(Effect.mapError((error) => new FilesystemError({ path: finalDir, reason: error.message })))
      yield* store.kernels
        .insert(kernel)
        .pipe(Effect.tapError(() => fs.remove(finalDir, { recursive: true, force: true }).pipe(Effect.ignoreLogged)))
      yield* releaseLease(fs, finalDir).pipe(Effect.ignoreLogged)
      return kernel
    }).pipe(Effect.uninterruptible)
  )
})
