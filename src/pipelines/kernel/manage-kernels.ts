import * as path from "node:path"
import { DateTime, Effect, Option } from "effect"
import { KernelInUse, KernelNotFound } from "../../domain/errors.js"
import { Kernel, type KernelInputs } from "../../domain/image.js"
import { releaseFromModulesDir } from "../../domain/kernel-file.js"
import { StatePaths } from "../../layers/state/state-paths.js"
import { Store } from "../../layers/store/store.js"
import { validateImageName } from "../pull/parse-reference.js"
import { validateKernelInputs } from "../pull/resolve-kernel.js"
import { relocate, stageBootArtifacts } from "../pull/stage-boot.js"
import { inspectKernelFile } from "./inspect-kernel.js"
import { acquireKernelStaging, ensureKernelNameFree, publishKernel } from "./kernel-staging.js"
import { imagesUsingKernel, removeKernel } from "./remove-kernel.js"

export const listKernels = Effect.flatMap(Store, (store) => store.kernels.list)

export const showKernel = Effect.fn("showKernel")(function* (name: string) {
  const store = yield* Store
  const kernel = yield* store.kernels.find(name)
  if (Option.isNone(kernel)) return yield* new KernelNotFound({ name, reason: "see banger kernel list" })
  return kernel.value
})

/**
 * Copies the triple into `<state>/kernels/<name>/` through a staging dir, so a failed copy leaves
 * nothing; the kernel's format and release are read from the file itself.
 */
export const registerKernel = Effect.fn("registerKernel")(function* (name: string, inputs: KernelInputs) {
  const paths = yield* StatePaths
  yield* validateImageName(name)
  yield* validateKernelInputs(inputs)
  yield* ensureKernelNameFree(name)
  const info = yield* inspectKernelFile(inputs.kernel)
  const modulesRelease = inputs.modules === undefined ? undefined : releaseFromModulesDir(path.basename(inputs.modules))
  const finalDir = paths.kernelDir(name)
  return yield* Effect.scoped(
    Effect.gen(function* () {
      const staging = yield* acquireKernelStaging()
      const copies = yield* stageBootArtifacts(inputs, staging)
      const kernel = new Kernel({
        name,
        kernel: relocate(copies.kernel, staging, finalDir)!,
        initrd: relocate(copies.initrd, staging, finalDir) ?? null,
        modules: relocate(copies.modules, staging, finalDir) ?? null,
        createdAt: DateTime.formatIso(yield* DateTime.now),
        version: modulesRelease ?? info.release ?? null,
        format: info.format
      })
      return yield* publishKernel(staging, kernel)
    })
  )
})

/** Refused while images were made with the kernel, unless `force` (they keep their own copies). */
export const deleteKernel = Effect.fn("deleteKernel")(function* (name: string, force = false) {
  const kernel = yield* showKernel(name)
  const users = yield* imagesUsingKernel(name)
  if (users.length > 0 && !force) {
    return yield* new KernelInUse({
      name,
      images: users,
      reason: "delete those images first, or pass --force (they keep their own copies of the boot files)"
    })
  }
  yield* removeKernel(name)
  return kernel
})
