import { FileSystem } from "@effect/platform"
import { Effect, Option, Stream } from "effect"
import { FilesystemError, NotAKernel } from "../../domain/errors.js"
import type { KernelFormat } from "../../domain/image.js"
import { bannerScanner, bzImageRelease, detectKernelFormat, KERNEL_HEAD_BYTES } from "../../domain/kernel-file.js"

export interface KernelFileInfo {
  readonly format: KernelFormat
  /** The release from the file's own version string; undefined when it carries none we can read. */
  readonly release: string | undefined
}

/**
 * Reads a kernel file's magic and version string. `shownAs` names the file in errors (the path
 * inside an image rather than the temp tree's). Not an ELF or a bzImage → NotAKernel.
 */
export const inspectKernelFile = Effect.fn("inspectKernelFile")(function* (file: string, shownAs: string = file) {
  const fs = yield* FileSystem.FileSystem
  const fsError = (error: { message: string }) => new FilesystemError({ path: shownAs, reason: error.message })
  const head = yield* Effect.scoped(
    Effect.flatMap(fs.open(file, { flag: "r" }), (handle) => handle.readAlloc(KERNEL_HEAD_BYTES))
  ).pipe(Effect.map(Option.getOrElse(() => new Uint8Array(0))), Effect.mapError(fsError))
  const format = detectKernelFormat(head)
  if (format === undefined) {
    return yield* new NotAKernel({
      path: shownAs,
      reason: "neither an ELF vmlinux (\\x7fELF) nor a bzImage (HdrS at 0x202, 0xAA55 at 0x1FE)"
    })
  }
  if (format === "bzImage") return { format, release: bzImageRelease(head) } satisfies KernelFileInfo
  // An ELF vmlinux is uncompressed: its banner is in .rodata, somewhere in the file.
  const scan = bannerScanner()
  const release = yield* fs.stream(file, { chunkSize: 1024 * 1024 }).pipe(
    Stream.map(scan),
    Stream.concat(Stream.sync(() => scan(new Uint8Array(0)))),
    Stream.filter((found): found is string => found !== undefined),
    Stream.runHead,
    Effect.map(Option.getOrUndefined),
    Effect.mapError(fsError)
  )
  return { format, release } satisfies KernelFileInfo
})
