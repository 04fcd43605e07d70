import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { Effect, Option } from "effect"
import { ImageSourceChanged, InvalidRootfs } from "../../domain/errors.js"
import type { FileStamp, Image } from "../../domain/image.js"
import { checkExt4Superblock, SUPERBLOCK_END } from "../../layers/ext4/superblock-check.js"

const stampOf = (info: FileSystem.File.Info): FileStamp => ({
  size: Number(info.size),
  mtimeMs: Option.getOrElse(
    Option.map(info.mtime, (date) => date.getTime()),
    () => 0
  )
})

const article = (type: FileSystem.File.Type) => (type === "Directory" ? "a directory" : `a ${type.toLowerCase()}`)

/**
 * Checks a rootfs for `image register` by reading it, never by its name: an absolute path to a
 * regular file (symlinks followed) whose primary superblock is ext2/3/4's and fits in the file.
 * Answers the stamp promote will compare against.
 */
export const inspectRootfs = Effect.fn("inspectRootfs")(function* (file: string) {
  const fs = yield* FileSystem.FileSystem
  const invalid = (reason: string) => new InvalidRootfs({ path: file, reason })
  if (!path.isAbsolute(file)) return yield* invalid("must be an absolute path")
  const info = yield* fs
    .stat(file)
    .pipe(
      Effect.mapError((error) =>
        invalid(error._tag === "SystemError" && error.reason === "NotFound" ? "does not exist" : error.message)
      )
    )
  if (info.type !== "File") return yield* invalid(`must be a regular file, not ${article(info.type)}`)
  const head = yield* Effect.scoped(
    Effect.flatMap(fs.open(file, { flag: "r" }), (opened) => opened.readAlloc(FileSystem.Size(SUPERBLOCK_END)))
  ).pipe(Effect.mapError((error) => invalid(`cannot read it: ${error.message}`)))
  const checked = checkExt4Superblock(
    Option.getOrElse(head, () => new Uint8Array()),
    Number(info.size)
  )
  if ("problem" in checked) return yield* invalid(checked.problem)
  return stampOf(info)
})

/** Size and mtime of a file (kernel, initrd) as it is now. */
export const stampFile = Effect.fn("stampFile")(function* (file: string) {
  const fs = yield* FileSystem.FileSystem
  return stampOf(yield* fs.stat(file))
})

const describeChange = (recorded: FileStamp, now: FileStamp) => {
  const changes: Array<string> = []
  if (recorded.size !== now.size) changes.push(`size ${recorded.size} → ${now.size} bytes`)
  if (recorded.mtimeMs !== now.mtimeMs) {
    changes.push(
      `modified ${new Date(now.mtimeMs).toISOString()}, registered at ${new Date(recorded.mtimeMs).toISOString()}`
    )
  }
  return changes.join(", ")
}

/** Fails with ImageSourceChanged unless `file` is still a regular file with the recorded stamp. */
const verifyFile = (fs: FileSystem.FileSystem, name: string, file: string, recorded: FileStamp) =>
  Effect.gen(function* () {
    const changed = (reason: string) => new ImageSourceChanged({ name, path: file, reason })
    const info = yield* fs
      .stat(file)
      .pipe(
        Effect.mapError((error) =>
          changed(
            error._tag === "SystemError" && error.reason === "NotFound"
              ? "vanished since it was registered"
              : `cannot be checked: ${error.message}`
          )
        )
      )
    if (info.type !== "File") return yield* changed(`is no longer a regular file (now ${article(info.type)})`)
    const now = stampOf(info)
    if (now.size !== recorded.size || now.mtimeMs !== recorded.mtimeMs) {
      return yield* changed(`changed since it was registered (${describeChange(recorded, now)})`)
    }
  })

const verifyDirectory = (fs: FileSystem.FileSystem, name: string, dir: string) =>
  Effect.gen(function* () {
    const changed = (reason: string) => new ImageSourceChanged({ name, path: dir, reason })
    const info = yield* fs.stat(dir).pipe(Effect.mapError(() => changed("vanished since it was registered")))
    if (info.type !== "Directory") return yield* changed(`is no longer a directory (now ${article(info.type)})`)
  })

/** Every file of an unmanaged image is still as registered (modules: still a directory). */
export const verifySources = Effect.fn("verifySources")(function* (image: Image) {
  const fs = yield* FileSystem.FileSystem
  const sources = image.sources
  if (sources === null) return
  yield* verifyFile(fs, image.name, image.rootfs, sources.rootfs)
  yield* verifyFile(fs, image.name, image.kernel, sources.kernel)
  if (image.initrd !== null && sources.initrd !== null) {
    yield* verifyFile(fs, image.name, image.initrd, sources.initrd)
  }
  if (image.modules !== null) yield* verifyDirectory(fs, image.name, image.modules)
})
