import { FileSystem } from "@effect/platform"
import { DateTime, Effect, Option } from "effect"
import { FilesystemError, KernelNameTaken, KernelNotFound } from "../../domain/errors.js"
import { Kernel, type KernelInputs } from "../../domain/image.js"
import { StatePaths } from "../../layers/state/state-paths.js"
import { Store } from "../../layers/store/store.js"
import { validateImageName } from "../pull/parse-reference.js"
import { validateKernelInputs } from "../pull/resolve-kernel.js"
import { relocate, stageBootArtifacts } from "../pull/stage-boot.js"

export const listKernels = Effect.flatMap(Store, (store) => store.kernels.list)

export const showKernel = Effect.fn("showKernel")(function* (name: string) {
  const store = yield* Store
  const kernel = yield* store.kernels.find(name)
  if (Option.isNone(kernel)) return yield* new KernelNotFound({ name, reason: "see banger kernel list" })
  return kernel.value
})

/** Copies the triple into `<state>/kernels/<name>/` via a temp dir, so a failed copy leaves nothing. */
export const registerKernel = Effect.fn("registerKernel")(function* (name: string, inputs: KernelInputs) {
  const store = yield* Store
  const fs = yield* FileSystem.FileSystem
  const paths = yield* StatePaths
  yield* validateImageName(name)
  yield* validateKernelInputs(inputs)
  if (Option.isSome(yield* store.kernels.find(name))) {
    return yield* new KernelNameTaken({ name, reason: "delete it first or pick another name" })
  }
  const finalDir = paths.kernelDir(name)
  const fsError = (target: string) => (error: { message: string }) =>
    new FilesystemError({ path: target, reason: error.message })
  return yield* Effect.scoped(
    Effect.gen(function* () {
      const staging = yield* Effect.acquireRelease(
        Effect.sync(() => paths.tempPath(paths.tmp, "kernel")).pipe(
          Effect.tap((dir) => fs.makeDirectory(dir, { recursive: true })),
          Effect.tap(() => fs.makeDirectory(paths.kernels, { recursive: true })),
          Effect.mapError(fsError(paths.tmp))
        ),
        (dir) => fs.remove(dir, { recursive: true, force: true }).pipe(Effect.ignoreLogged)
      )
      const copies = yield* stageBootArtifacts(inputs, staging)
      const kernel = new Kernel({
        name,
        kernel: relocate(copies.kernel, staging, finalDir)!,
        initrd: relocate(copies.initrd, staging, finalDir) ?? null,
        modules: relocate(copies.modules, staging, finalDir) ?? null,
        createdAt: DateTime.formatIso(yield* DateTime.now)
      })
      return yield* Effect.uninterruptible(
        Effect.gen(function* () {
          yield* fs.rename(staging, finalDir).pipe(Effect.mapError(fsError(finalDir)))
          yield* store.kernels
            .insert(kernel)
            .pipe(
              Effect.tapError(() => fs.remove(finalDir, { recursive: true, force: true }).pipe(Effect.ignoreLogged))
            )
          return kernel
        })
      )
    })
  )
})

export const deleteKernel = Effect.fn("deleteKernel")(function* (name: string) {
  const store = yield* Store
  const fs = yield* FileSystem.FileSystem
  const paths = yield* StatePaths
  const kernel = yield* showKernel(name)
  yield* store.kernels.remove(name)
  yield* fs.remove(paths.kernelDir(name), { recursive: true, force: true }).pipe(Effect.ignoreLogged)
  return kernel
})
