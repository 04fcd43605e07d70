import { randomUUID } from "node:crypto"
import { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { FilesystemError } from "../../domain/errors.js"
import { StatePaths } from "../../layers/state/state-paths.js"
import { writeLease } from "./lease.js"

export interface Staging {
  readonly id: string
  readonly dir: string
}

/** A new image's id, which names its directory under `<state>/images/` once it is managed. */
export const newImageId = () => randomUUID().replaceAll("-", "").slice(0, 16)

/**
 * `<state>/images/<id>.staging`, removed when the scope closes unless publish renamed it away:
 * any failure or interruption after this point leaves nothing behind.
 */
export const acquireStaging = Effect.fn("acquireStaging")(function* () {
  const fs = yield* FileSystem.FileSystem
  const paths = yield* StatePaths
  const id = newImageId()
  const dir = paths.stagingDir(id)
  return yield* Effect.acquireRelease(
    fs.makeDirectory(paths.images, { recursive: true }).pipe(
      Effect.zipRight(fs.makeDirectory(dir)),
      Effect.zipRight(writeLease(fs, dir)),
      Effect.as<Staging>({ id, dir }),
      Effect.mapError((error) => new FilesystemError({ path: dir, reason: error.message }))
    ),
    () => fs.remove(dir, { recursive: true, force: true }).pipe(Effect.ignoreLogged)
  )
})
