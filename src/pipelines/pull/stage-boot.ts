import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { FilesystemError } from "../../domain/errors.js"
import type { KernelInputs } from "../../domain/image.js"

/** File names of the boot artifacts inside an image (or kernel store) directory. */
export const BootArtifactNames = { kernel: "kernel", initrd: "initrd.img", modules: "modules" } as const

/** Copies the kernel triple into `dir`; returns the copies' paths relative to nothing (absolute, in `dir`). */
export const stageBootArtifacts = Effect.fn("stageBootArtifacts")(function* (inputs: KernelInputs, dir: string) {
  const fs = yield* FileSystem.FileSystem
  const copy = (from: string, name: string) => {
    const to = path.join(dir, name)
    return fs.copy(from, to, { preserveTimestamps: true }).pipe(
      Effect.as(to),
      Effect.mapError((error) => new FilesystemError({ path: from, reason: `cannot copy: ${error.message}` }))
    )
  }
  const kernel = yield* copy(inputs.kernel, BootArtifactNames.kernel)
  const initrd = inputs.initrd === undefined ? undefined : yield* copy(inputs.initrd, BootArtifactNames.initrd)
  const modules = inputs.modules === undefined ? undefined : yield* copy(inputs.modules, BootArtifactNames.modules)
  return { kernel, initrd, modules } satisfies KernelInputs
})

/** Where staged artifacts end up once `stagingDir` has been renamed to `finalDir`. */
export const relocate = (file: string | undefined, stagingDir: string, finalDir: string) =>
  file === undefined ? undefined : path.join(finalDir, path.relative(stagingDir, file))
