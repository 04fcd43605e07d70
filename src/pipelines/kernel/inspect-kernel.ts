import { FileSystem } from "@effect/platform"
import { Effect, Option, Stream } from "effect"
import { hasPvhEntry, noteSegments } from "../../domain/elf-notes.js"
import { FilesystemError, NotAKernel } from "../../domain/errors.js"
import type { KernelFormat } from "../../domain/image.js"
import { bannerScanner, bzImageRelease, detectKernelFormat, KERNEL_HEAD_BYTES } from "../../domain/kernel-file.js"

export interface KernelFileInfo {
  readonly format: KernelFormat
  /** The release from the file's own version string; undefined when it carries none we can read. */
  readonly release: string | undefined
  /** An ELF kernel with a PVH entry note, which QEMU can boot with -kernel; a bzImage needs none. */
  readonly pvh: boolean
}

/** Note segments are a few KiB; anything larger is not a kernel's. */
const MAX_NOTES_BYTES = 1024 * 1024

const notAKernel = (shownAs: string) =>
  new NotAKernel({
    path: shownAs,
    reason: "neither an ELF vmlinux (\\x7fELF) nor a bzImage (HdrS at 0x202, 0xAA55 at 0x1FE)"
  })

/** Only the magic, from the file's first bytes: what every path a kernel comes in through is checked with. */
export const checkKernelMagic = Effect.fn("checkKernelMagic")(function* (file: string, shownAs: string = file) {
  const fs = yield* FileSystem.FileSystem
  const head = yield* Effect.scoped(
    Effect.flatMap(fs.open(file, { flag: "r" }), (handle) => handle.readAlloc(KERNEL_HEAD_BYTES))
  ).pipe(
    Effect.map(Option.getOrElse(() => new Uint8Array(0))),
    Effect.mapError((error) => new FilesystemError({ path: shownAs, reason: error.message }))
  )
  const format = detectKernelFormat(head)
  if (format === undefined) return yield* notAKernel(shownAs)
  return format
})

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
  if (format === undefined) return yield* notAKernel(shownAs)
  if (format === "bzImage") return { format, release: bzImageRelease(head), pvh: false } satisfies KernelFileInfo
  const pvh = yield* Effect.scoped(
    Effect.gen(function* () {
      const handle = yield* fs.open(file, { flag: "r" })
      for (const segment of noteSegments(head)) {
        if (segment.size > MAX_NOTES_BYTES) continue
        yield* handle.seek(segment.offset, "start")
        const notes = yield* handle.readAlloc(segment.size)
        if (Option.isSome(notes) && hasPvhEntry(notes.value)) return true
      }
      return false
    })
  ).pipe(Effect.mapError(fsError))
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
  return { format, release, pvh } satisfies KernelFileInfo
})
