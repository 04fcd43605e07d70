import { DateTime, Effect } from "effect"
import { FilesystemError } from "../../domain/errors.js"
import { Image, type SourceStamps } from "../../domain/image.js"
import { Store } from "../../layers/store/store.js"
import { validateImageName } from "../pull/parse-reference.js"
import { reportStage } from "../pull/progress.js"
import { type KernelSource, type ResolvedKernelInputs, resolveKernelInputs } from "../pull/resolve-kernel.js"
import { newImageId } from "../pull/staging.js"
import { inspectRootfs, stampFile } from "./source-files.js"

export interface RegisterRequest {
  readonly name: string
  /** Absolute: the daemon does not share the client's working directory. */
  readonly rootfs: string
  readonly kernel?: KernelSource | undefined
  /** The catalog a `--kernel-ref` is looked up in when no local kernel has that name. */
  readonly catalog?: string | undefined
}

const stamp = (file: string) =>
  stampFile(file).pipe(
    Effect.mapError((error) => new FilesystemError({ path: file, reason: `cannot stat: ${error.message}` }))
  )

/** The unmanaged image's row: paths as given, the stamps promote will compare against. */
const recordImage = Effect.fn("recordImage")(function* (
  request: RegisterRequest,
  name: string,
  kernel: ResolvedKernelInputs,
  sources: SourceStamps
) {
  const store = yield* Store
  const image = new Image({
    id: newImageId(),
    name,
    ref: null,
    manifestDigest: null,
    platform: null,
    managed: false,
    rootfs: request.rootfs,
    kernel: kernel.kernel,
    initrd: kernel.initrd ?? null,
    modules: kernel.modules ?? null,
    sizeBytes: sources.rootfs.size,
    createdAt: DateTime.formatIso(yield* DateTime.now),
    kernelName: kernel.kernelName ?? null,
    sources
  })
  yield* store.images.insert(image)
  return image
})

/**
 * `banger image register`: records an unmanaged image whose files stay where they are. Nothing is
 * copied; the row (one INSERT, whose UNIQUE name decides races) is the only thing written.
 */
export const registerImage = Effect.fn("registerImage")(function* (request: RegisterRequest) {
  yield* reportStage("inspect")
  const name = yield* validateImageName(request.name)
  const rootfs = yield* inspectRootfs(request.rootfs)
  // Scoped: work the kernel step does for this call (a pulled catalog kernel) is undone if the rest fails.
  return yield* Effect.scoped(
    Effect.gen(function* () {
      const kernel = yield* resolveKernelInputs(request.kernel, request.catalog)
      const kernelStamp = yield* stamp(kernel.kernel)
      const initrdStamp = kernel.initrd === undefined ? null : yield* stamp(kernel.initrd)
      yield* reportStage("publish")
      return yield* recordImage(request, name, kernel, { rootfs, kernel: kernelStamp, initrd: initrdStamp })
    })
  )
})
