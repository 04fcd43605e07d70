/**
 * The on-disk side of the tree: contents only, owner-only permissions (directories 0700, files
 * 0600), no ownership, no special files. Callers pass paths built from resolved, real directory
 * components; every call here is one that does not follow a symlink in its last component
 * (O_NOFOLLOW|O_EXCL opens, mkdir, symlink, link, unlink, rm), so the tree's own symlinks are never
 * followed, whatever they point at.
 */
import { constants } from "node:fs"
import * as fs from "node:fs/promises"
import { Effect } from "effect"
import { FilesystemError } from "../../domain/errors.js"

const describe = (error: unknown) => {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code
    return code ? `${code}: ${error.message}` : error.message
  }
  return String(error)
}

const attempt = <A>(path: string, operation: string, run: () => Promise<A>) =>
  Effect.tryPromise({
    try: run,
    catch: (error) => new FilesystemError({ path, reason: `${operation} failed: ${describe(error)}` })
  })

const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW

export const makeDirectory = (path: string) => attempt(path, "mkdir", () => fs.mkdir(path, { mode: 0o700 }))

/** An empty 0600 file: contents to come, or a placeholder for a device or fifo. */
const createFile = (path: string) =>
  Effect.acquireRelease(
    attempt(path, "create", () => fs.open(path, CREATE_FLAGS, 0o600)),
    (handle) => Effect.promise(() => handle.close())
  )

export const makePlaceholder = (path: string) => Effect.scoped(createFile(path))

/** Streams `next` chunks into a new file until it yields `undefined`; returns the byte count. */
export const writeFile = <E>(path: string, next: Effect.Effect<Uint8Array | undefined, E>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const handle = yield* createFile(path)
      let written = 0
      while (true) {
        const chunk = yield* next
        if (chunk === undefined) return written
        let offset = 0
        while (offset < chunk.length) {
          const { bytesWritten } = yield* attempt(path, "write", () => handle.write(chunk, offset))
          offset += bytesWritten
        }
        written += chunk.length
      }
    })
  )

export const makeSymlink = (target: string, path: string) => attempt(path, "symlink", () => fs.symlink(target, path))

// link(2) does not dereference a symlink given as the existing name, so linking a symlink links it.
export const makeHardlink = (existing: string, path: string) => attempt(path, "link", () => fs.link(existing, path))

export const removeEntry = (path: string, isDirectory: boolean) =>
  isDirectory
    ? attempt(path, "remove", () => fs.rm(path, { recursive: true }))
    : attempt(path, "unlink", () => fs.unlink(path))
