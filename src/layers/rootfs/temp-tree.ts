/**
 * The scratch directory a rootfs is flattened into: `<state>/tmp/<pid>-rootfs-<random>` (a name the
 * recovery sweep attributes to this process), owner-only, and removed when its scope closes whether
 * the build succeeded, failed or was interrupted.
 */
import * as fs from "node:fs/promises"
import { Effect } from "effect"
import { FilesystemError } from "../../domain/errors.js"
import type { StatePathsShape } from "../state/state-paths.js"

const reasonOf = (error: unknown) => (error instanceof Error ? error.message : String(error))

export const acquireTempTree = (paths: StatePathsShape) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        await fs.mkdir(paths.tmp, { recursive: true, mode: 0o700 })
        const dir = paths.tempPath(paths.tmp, "rootfs")
        await fs.mkdir(dir, { mode: 0o700 })
        return dir
      },
      catch: (error) =>
        new FilesystemError({ path: paths.tmp, reason: `cannot create a temp tree: ${reasonOf(error)}` })
    }),
    (dir) =>
      Effect.tryPromise(() => fs.rm(dir, { recursive: true, force: true })).pipe(
        Effect.catchAll((error) => Effect.logWarning(`could not remove temp tree ${dir}`, error))
      )
  )
