import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { Effect, Option } from "effect"
import { InvalidKernelInput, KernelMissing, KernelNotFound } from "../../domain/errors.js"
import type { KernelInputs } from "../../domain/image.js"
import { Store } from "../../layers/store/store.js"

/** Where the boot artifacts come from: direct paths, or a kernel registered in the local store. */
export type KernelSource =
  | {
      readonly _tag: "Paths"
      readonly kernel: string
      readonly initrd?: string | undefined
      readonly modules?: string | undefined
    }
  | { readonly _tag: "Stored"; readonly name: string }

const requireFile = (fs: FileSystem.FileSystem, file: string, what: string) =>
  Effect.gen(function* () {
    if (!path.isAbsolute(file)) {
      return yield* new InvalidKernelInput({ path: file, reason: `${what} must be an absolute path` })
    }
    const info = yield* fs
      .stat(file)
      .pipe(Effect.mapError(() => new InvalidKernelInput({ path: file, reason: `${what} does not exist` })))
    if (info.type !== "File") {
      return yield* new InvalidKernelInput({ path: file, reason: `${what} must be a regular file` })
    }
    yield* fs
      .access(file, { readable: true })
      .pipe(Effect.mapError(() => new InvalidKernelInput({ path: file, reason: `${what} is not readable` })))
  })

const requireDirectory = (fs: FileSystem.FileSystem, dir: string) =>
  Effect.gen(function* () {
    if (!path.isAbsolute(dir)) {
      return yield* new InvalidKernelInput({ path: dir, reason: "modules must be an absolute path" })
    }
    const info = yield* fs
      .stat(dir)
      .pipe(Effect.mapError(() => new InvalidKernelInput({ path: dir, reason: "modules directory does not exist" })))
    if (info.type !== "Directory") {
      return yield* new InvalidKernelInput({ path: dir, reason: "modules must be a directory" })
    }
  })

/** Checks a kernel triple on its own: absolute, present, files readable, modules a directory. */
export const validateKernelInputs = Effect.fn("validateKernelInputs")(function* (inputs: KernelInputs) {
  const fs = yield* FileSystem.FileSystem
  yield* requireFile(fs, inputs.kernel, "kernel")
  if (inputs.initrd !== undefined) yield* requireFile(fs, inputs.initrd, "initrd")
  if (inputs.modules !== undefined) yield* requireDirectory(fs, inputs.modules)
  return inputs
})

/** Shared by `image pull` and `image register`: turns the user's kernel options into checked paths. */
export const resolveKernelInputs = Effect.fn("resolveKernelInputs")(function* (source: KernelSource | undefined) {
  if (source === undefined) {
    return yield* new KernelMissing({
      reason: "pass --kernel PATH (with optional --initrd PATH and --modules DIR) or --kernel-ref NAME"
    })
  }
  if (source._tag === "Paths") {
    return yield* validateKernelInputs({ kernel: source.kernel, initrd: source.initrd, modules: source.modules })
  }
  const store = yield* Store
  const kernel = yield* store.kernels.find(source.name)
  if (Option.isNone(kernel)) {
    return yield* new KernelNotFound({ name: source.name, reason: "register it with: banger kernel register" })
  }
  return yield* validateKernelInputs({
    kernel: kernel.value.kernel,
    initrd: kernel.value.initrd ?? undefined,
    modules: kernel.value.modules ?? undefined
  })
})
