import { randomUUID } from "node:crypto"
import { FileSystem } from "@effect/platform"
import { Effect, Exit } from "effect"
import { FilesystemError } from "../../domain/errors.js"
import { StatePaths } from "../../layers/state/state-paths.js"

/** The guest's serial console, in the VM's directory (appended to by every boot). */
export const CONSOLE_LOG = "console.log"

export const newVmId = () => randomUUID().replaceAll("-", "").slice(0, 16)

/**
 * `<state>/vms/<id>/`, private to the daemon's user; removed if the caller's scope fails, kept
 * when it succeeds (the VM row then owns it). A crash in between leaves a dir with no row, which
 * the next daemon's reconcile removes.
 */
export const acquireVmDir = Effect.fn("vm.acquireDir")(function* (id: string) {
  const fs = yield* FileSystem.FileSystem
  const paths = yield* StatePaths
  const dir = paths.vmDir(id)
  return yield* Effect.acquireRelease(
    fs.makeDirectory(paths.vms, { recursive: true }).pipe(
      Effect.zipRight(fs.makeDirectory(dir, { mode: 0o700 })),
      Effect.as(dir),
      Effect.mapError((error) => new FilesystemError({ path: dir, reason: error.message }))
    ),
    (dir, exit) =>
      Exit.isFailure(exit) ? fs.remove(dir, { recursive: true, force: true }).pipe(Effect.ignoreLogged) : Effect.void
  )
})
