/**
 * The scratch directory a rootfs is flattened into: `<state>/tmp/rootfs-XXXXXX`, owner-only, and
 * removed when its scope closes whether the build succeeded, failed or was interrupted.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Effect } from "effect"
import { FilesystemError } from "../../domain/errors.js"

const reasonOf = (error: unknown) => (error instanceof Error ? error.message : String(error))

export const acquireTempTree = (tmp: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        await fs.mkdir(tmp, { recursive: true, mode: 0o700 })
        return await fs.mkdtemp(path.join(tmp, "rootfs-"))
      },
      catch: (error) => new FilesystemError({ path: tmp, reason: `cannot create a temp tree: ${reasonOf(error)}` })
    }),
    (dir) =>
      Effect.tryPromise(() => fs.rm(dir, { recursive: true, force: true })).pipe(
        Effect.catchAll((error) => Effect.logWarning(`could not remove temp tree ${dir}`, error))
      )
  )
