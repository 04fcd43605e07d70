import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { FilesystemError } from "../../domain/errors.js"
import type { KernelInputs } from "../../domain/image.js"
import type { FlatTree } from "../../domain/tree.js"
import { BootArtifactNames } from "../pull/stage-boot.js"
import type { ImagePaths } from "./image-paths.js"

export interface FoundBootFiles {
  /** Resolved image paths (no leading `/`, no symlink on the way). */
  readonly kernel: string
  readonly initrd: string | undefined
  readonly modules: string | undefined
}

/**
 * Copies the found files out of the flattened tree into `dir`. Every source path was resolved
 * through the image's entries, so no component of it is a symlink; inside the modules tree only
 * directories and regular files are copied (its `build`/`source` links point at the image's own
 * /usr/src, and a link kept on the host could later be followed by a copy).
 */
export const extractBootFiles = Effect.fn("extractBootFiles")(function* (
  tree: FlatTree,
  paths: ImagePaths,
  found: FoundBootFiles,
  dir: string
) {
  const fs = yield* FileSystem.FileSystem
  const onHost = (imagePath: string) => path.join(tree.dir, imagePath)
  const fsError = (target: string) => (error: { message: string }) =>
    new FilesystemError({ path: target, reason: error.message })
  const copyFile = (from: string, to: string) =>
    fs.copyFile(onHost(from), to).pipe(Effect.zipRight(fs.chmod(to, 0o644)), Effect.mapError(fsError(to)))

  const kernel = path.join(dir, BootArtifactNames.kernel)
  yield* copyFile(found.kernel, kernel)
  let initrd: string | undefined
  if (found.initrd !== undefined) {
    initrd = path.join(dir, BootArtifactNames.initrd)
    yield* copyFile(found.initrd, initrd)
  }
  let modules: string | undefined
  if (found.modules !== undefined) {
    modules = path.join(dir, BootArtifactNames.modules)
    yield* fs.makeDirectory(modules, { mode: 0o755 }).pipe(Effect.mapError(fsError(modules)))
    for (const entry of paths.below(found.modules)) {
      const to = path.join(modules, entry.path.slice(found.modules.length + 1))
      if (entry.type === "directory") {
        yield* fs.makeDirectory(to, { mode: 0o755 }).pipe(Effect.mapError(fsError(to)))
      } else if (entry.type === "file") {
        yield* copyFile(entry.hardlinkTo ?? entry.path, to)
      }
    }
  }
  return { kernel, initrd, modules } satisfies KernelInputs
})
