import { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { StatePaths } from "../../layers/state/state-paths.js"
import { Store } from "../../layers/store/store.js"

/** Names of the images made with kernel `name` (images.kernel_name). */
export const imagesUsingKernel = Effect.fn("imagesUsingKernel")(function* (name: string) {
  const store = yield* Store
  return (yield* store.images.list).filter((image) => image.kernelName === name).map((image) => image.name)
})

/** Row, then files: a crash in between leaves a dir without a row, which the recovery sweep removes. */
export const removeKernel = Effect.fn("removeKernel")(function* (name: string) {
  const store = yield* Store
  const fs = yield* FileSystem.FileSystem
  const paths = yield* StatePaths
  yield* store.kernels.remove(name)
  yield* fs.remove(paths.kernelDir(name), { recursive: true, force: true }).pipe(Effect.ignoreLogged)
})

/** Rolls back a kernel pulled for an operation that then failed, unless an image got to use it. */
export const removeUnusedKernel = Effect.fn("removeUnusedKernel")(function* (name: string) {
  if ((yield* imagesUsingKernel(name)).length > 0) return
  yield* removeKernel(name)
})
