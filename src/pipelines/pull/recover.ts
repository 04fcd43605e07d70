import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { isIdentityAlive } from "../../layers/host/process-identity.js"
import { StatePaths, tempPathOwner } from "../../layers/state/state-paths.js"
import { Store } from "../../layers/store/store.js"
import { isLeased } from "./lease.js"

export interface RecoveryReport {
  readonly removed: ReadonlyArray<string>
}

const listDir = (fs: FileSystem.FileSystem, dir: string) =>
  fs.readDirectory(dir).pipe(Effect.orElseSucceed((): ReadonlyArray<string> => []))

/**
 * Removes what a crashed or killed banger left behind: staging dirs, image dirs with no row, temp
 * trees and partial downloads. Work that a live process still owns (by lease or temp name) stays.
 */
export const recoverState = Effect.fn("recoverState")(function* () {
  const fs = yield* FileSystem.FileSystem
  const paths = yield* StatePaths
  const store = yield* Store
  const removed: Array<string> = []
  const remove = (target: string) =>
    fs.remove(target, { recursive: true, force: true }).pipe(
      Effect.tap(() => Effect.sync(() => removed.push(target))),
      Effect.catchAll((error) => Effect.logWarning(`recovery could not remove ${target}: ${error.message}`))
    )

  const known = yield* store.images.managedIds
  for (const name of yield* listDir(fs, paths.images)) {
    const dir = path.join(paths.images, name)
    const id = name.endsWith(".staging") ? undefined : name
    if (id !== undefined && known.has(id)) continue
    if (yield* isLeased(fs, dir)) continue
    yield* remove(dir)
  }

  const kernels = new Set((yield* store.kernels.list).map((kernel) => kernel.name))
  // Kernel dirs without a row, and `.staging-*` dirs of kernel pulls that died with their process.
  for (const name of yield* listDir(fs, paths.kernels)) {
    if (kernels.has(name)) continue
    const dir = path.join(paths.kernels, name)
    if (yield* isLeased(fs, dir)) continue
    yield* remove(dir)
  }

  for (const dir of paths.tempDirs) {
    for (const name of yield* listDir(fs, dir)) {
      const owner = tempPathOwner(name)
      if (owner !== undefined && isIdentityAlive(owner)) continue
      yield* remove(path.join(dir, name))
    }
  }
  if (removed.length > 0) yield* Effect.logInfo(`recovery removed ${removed.length} leftover path(s)`)
  return { removed } satisfies RecoveryReport
})
