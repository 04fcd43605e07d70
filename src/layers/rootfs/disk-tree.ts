/**
 * The on-disk side of the tree: contents only, owner-only permissions (directories 0700, files
 * 0600), no ownership, no special files. Callers pass paths built from resolved, real directory
 * components; every call here is one that does not follow a symlink in its last component
 * (O_NOFOLLOW|O_EXCL opens, mkdir, symlink, link, unlink, rm), so the tree's own symlinks are never
 * followed, whatever they point at.
 *
 * Every call is synchronous and throws `DiskFailure`: the tree is written one entry at a time, and
 * a round trip through libuv's thread pool per open, write and close costs far more than the
 * syscall itself (most entries are small files landing in the page cache).
 */
import * as fs from "node:fs"
import { constants } from "node:fs"
import { describeSystemError, FilesystemError } from "../../domain/errors.js"

/** A failed disk operation, thrown; the caller turns it back into its `FilesystemError`. */
export class DiskFailure {
  constructor(readonly error: FilesystemError) {}
}

const attempt = <A>(path: string, operation: string, run: () => A): A => {
  try {
    return run()
  } catch (error) {
    throw new DiskFailure(new FilesystemError({ path, reason: `${operation} failed: ${describeSystemError(error)}` }))
  }
}

const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW

export const makeDirectory = (path: string): void => attempt(path, "mkdir", () => fs.mkdirSync(path, { mode: 0o700 }))

/** A new, empty 0600 file, open for writing: contents to come (see `writeAll`, `closeFile`). */
export const createFile = (path: string): number =>
  attempt(path, "create", () => fs.openSync(path, CREATE_FLAGS, 0o600))

/** Writes all of `chunk` at the file's current offset. */
export const writeAll = (fd: number, path: string, chunk: Uint8Array): void =>
  attempt(path, "write", () => {
    let offset = 0
    while (offset < chunk.length) offset += fs.writeSync(fd, chunk, offset)
  })

/** Writes all of `chunk` at byte `position` of the file (past its end leaves a hole before it). */
export const writeAllAt = (fd: number, path: string, chunk: Uint8Array, position: number): void =>
  attempt(path, "write", () => {
    let offset = 0
    while (offset < chunk.length) offset += fs.writeSync(fd, chunk, offset, chunk.length - offset, position + offset)
  })

/** Sets the file's size: a hole at the end of a sparse file exists only as that size. */
export const truncate = (fd: number, path: string, size: number): void =>
  attempt(path, "truncate", () => fs.ftruncateSync(fd, size))

export const closeFile = (fd: number): void => fs.closeSync(fd)

/** An empty placeholder for a device or fifo. */
export const makePlaceholder = (path: string): void => closeFile(createFile(path))

export const makeSymlink = (target: string, path: string): void =>
  attempt(path, "symlink", () => fs.symlinkSync(target, path))

// link(2) does not dereference a symlink given as the existing name, so linking a symlink links it.
export const makeHardlink = (existing: string, path: string): void =>
  attempt(path, "link", () => fs.linkSync(existing, path))

export const removeEntry = (path: string, isDirectory: boolean): void =>
  isDirectory
    ? attempt(path, "remove", () => fs.rmSync(path, { recursive: true }))
    : attempt(path, "unlink", () => fs.unlinkSync(path))
