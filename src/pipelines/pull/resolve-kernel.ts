import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { Effect, Exit, Option } from "effect"
import type { CatalogKernel } from "../../domain/catalog.js"
import { InvalidKernelInput, KernelMissing, KernelNotFound } from "../../domain/errors.js"
import type { KernelInputs } from "../../domain/image.js"
import { Store } from "../../layers/store/store.js"
import { lookupCatalog } from "../catalog/catalog-name.js"
import { checkKernelMagic } from "../kernel/inspect-kernel.js"
import { catalogKernelTarget, pullKernelTarget } from "../kernel/pull-kernel.js"
import { removeUnusedKernel } from "../kernel/remove-kernel.js"

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
  // A text file is not a kernel: refused here, before anything is copied or recorded.
  yield* checkKernelMagic(inputs.kernel)
  if (inputs.initrd !== undefined) yield* requireFile(fs, inputs.initrd, "initrd")
  if (inputs.modules !== undefined) yield* requireDirectory(fs, inputs.modules)
  return inputs
})

/** Where a stored kernel name comes from: the local store, or a catalog entry to pull first. */
const locateStored = Effect.fn("locateStored")(function* (name: string, catalog: string | undefined) {
  const store = yield* Store
  const local = yield* store.kernels.find(name)
  if (Option.isSome(local)) return { _tag: "Local", kernel: local.value } as const
  const entry = yield* lookupCatalog(name, catalog, (found, wanted) => found.findKernel(wanted))
  if (entry !== undefined) return { _tag: "Catalog", entry } as const
  return yield* new KernelNotFound({
    name,
    reason: "neither in the local kernel store (banger kernel list) nor in the catalog (banger catalog list)"
  })
})

const noKernel = () =>
  new KernelMissing({
    reason: "pass --kernel PATH (with optional --initrd PATH and --modules DIR) or --kernel-ref NAME"
  })

/**
 * The fast check run before an operation begins: paths valid, or a stored name that is local or in
 * the catalog. Nothing is pulled here.
 */
export const checkKernelSource = Effect.fn("checkKernelSource")(function* (
  source: KernelSource | undefined,
  catalog?: string | undefined
) {
  if (source === undefined) return yield* noKernel()
  if (source._tag === "Paths") {
    yield* validateKernelInputs({ kernel: source.kernel, initrd: source.initrd, modules: source.modules })
    return
  }
  yield* locateStored(source.name, catalog)
})

/** Checked boot artifacts, and the stored kernel they come from (recorded as the image's `kernelName`). */
export interface ResolvedKernelInputs extends KernelInputs {
  readonly kernelName: string | undefined
  /** True when the kernel was pulled from the catalog by this call. */
  readonly pulled: boolean
}

/**
 * Shared by `image pull` and `image register`: turns the user's kernel options into checked paths.
 * A `--kernel-ref` name that is not local but in the catalog is pulled here, under its catalog
 * name, as a "kernel" phase of the caller's operation; if the caller's work then fails (scope
 * closes with a failure), that kernel is removed again unless an image already uses it.
 */
export const resolveKernelInputs = Effect.fn("resolveKernelInputs")(function* (
  source: KernelSource | undefined,
  catalog?: string | undefined
) {
  if (source === undefined) return yield* noKernel()
  if (source._tag === "Paths") {
    const inputs = yield* validateKernelInputs({
      kernel: source.kernel,
      initrd: source.initrd,
      modules: source.modules
    })
    return { ...inputs, kernelName: undefined, pulled: false } satisfies ResolvedKernelInputs
  }
  const located = yield* locateStored(source.name, catalog)
  const kernel = located._tag === "Local" ? located.kernel : yield* pullCatalogKernelForCaller(located.entry)
  const inputs = yield* validateKernelInputs({
    kernel: kernel.kernel,
    initrd: kernel.initrd ?? undefined,
    modules: kernel.modules ?? undefined
  })
  return { ...inputs, kernelName: kernel.name, pulled: located._tag === "Catalog" } satisfies ResolvedKernelInputs
})

const pullCatalogKernelForCaller = Effect.fn("pullCatalogKernelForCaller")(function* (entry: CatalogKernel) {
  const store = yield* Store
  const pulled = yield* pullKernelTarget(yield* catalogKernelTarget(entry)).pipe(Effect.either)
  if (pulled._tag === "Left") {
    // Another operation published this kernel meanwhile: use theirs (and never roll it back).
    const error = pulled.left
    const theirs = error._tag === "KernelNameTaken" ? yield* store.kernels.find(entry.name) : Option.none()
    if (Option.isSome(theirs)) return theirs.value
    return yield* error
  }
  const kernel = pulled.right
  yield* Effect.addFinalizer((exit) =>
    Exit.isSuccess(exit) ? Effect.void : removeUnusedKernel(kernel.name).pipe(Effect.ignoreLogged)
  )
  return kernel
})
