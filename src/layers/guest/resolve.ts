import { Effect } from "effect"
import { GuestPathError } from "../../domain/errors.js"
import { type GuestEntry, ROOT_INO } from "./debugfs.js"

/** Linux's limit on symlinks followed in one lookup (MAXSYMLINKS). */
export const MAX_SYMLINKS = 40

/**
 * Where a lookup stands when it needs a directory's entries or a link's target: the canonical
 * path of the directory it is in and the names still to walk from there (the first is the one
 * being looked up). A reader may use it to fetch ahead; the result must not depend on it.
 */
export interface PendingPath {
  readonly dir: string
  readonly rest: ReadonlyArray<string>
}

export interface DirectoryReader<E> {
  readonly list: (ino: number, pending?: PendingPath) => Effect.Effect<ReadonlyArray<GuestEntry>, E>
  readonly readLink: (entry: GuestEntry, pending?: PendingPath) => Effect.Effect<string, E>
}

/** A path's place in the image: its directory's inode and canonical path, and its name there. */
interface Place {
  readonly parent: number
  /** The directory's path from the image root with every symlink resolved, "/" for the root. */
  readonly parentPath: string
  readonly name: string
}

export type Resolution =
  | (Place & { readonly _tag: "Found"; readonly entry: GuestEntry })
  /**
   * The last existing directory on the way and the first missing name in it. `remaining` are the
   * names still to go below it; `viaLink` says the missing name came from a symlink's target.
   */
  | (Place & { readonly _tag: "Missing"; readonly remaining: ReadonlyArray<string>; readonly viaLink: boolean })

interface Step {
  readonly name: string
  readonly fromLink: boolean
}

const split = (text: string, fromLink: boolean): Array<Step> =>
  text
    .split("/")
    .filter((name) => name !== "" && name !== ".")
    .map((name) => ({ name, fromLink }))

/**
 * Resolves `path` as a process chrooted into the image would: symlinked directories are followed
 * inside the image, an absolute target starts again from the image's root, `..` stops at the root,
 * and more than MAX_SYMLINKS links is a loop. The host is never consulted. The final symlink is
 * followed only with `followFinal`.
 */
export const resolvePath = <E>(
  reader: DirectoryReader<E>,
  image: string,
  path: string,
  followFinal: boolean
): Effect.Effect<Resolution, E | GuestPathError> =>
  Effect.gen(function* () {
    const fail = (reason: string) => new GuestPathError({ image, path, reason })
    const stack: Array<GuestEntry> = []
    const queue = split(path, false)
    let links = 0
    const here = () => ({
      parent: stack.at(-1)?.ino ?? ROOT_INO,
      parentPath: `/${stack.map((dir) => dir.name).join("/")}`
    })
    while (queue.length > 0) {
      const step = queue.shift()!
      if (step.name === "..") {
        stack.pop()
        continue
      }
      const { parent, parentPath } = here()
      const pending = { dir: parentPath, rest: [step.name, ...queue.map((next) => next.name)] }
      const entry = (yield* reader.list(parent, pending)).find((candidate) => candidate.name === step.name)
      if (entry === undefined) {
        const remaining = queue.filter((next) => next.name !== "..").map((next) => next.name)
        if (queue.some((next) => next.name === "..")) {
          return yield* fail(`${childPath(parentPath, step.name)} does not exist (and .. cannot pass through it)`)
        }
        return { _tag: "Missing", parent, parentPath, name: step.name, remaining, viaLink: step.fromLink }
      }
      const last = queue.length === 0
      if (entry.kind === "symlink" && (!last || followFinal)) {
        if (++links > MAX_SYMLINKS) return yield* fail(`too many levels of symbolic links (a loop?)`)
        const target = yield* reader.readLink(entry, pending)
        if (target.startsWith("/")) stack.length = 0
        queue.unshift(...split(target, true))
        continue
      }
      if (last) return { _tag: "Found", parent, parentPath, name: step.name, entry }
      if (entry.kind !== "directory") return yield* fail(`${childPath(parentPath, step.name)} is not a directory`)
      stack.push(entry)
    }
    // The path ended on a directory by `..` (or named the root).
    const entry = stack.pop()
    if (entry === undefined) return { _tag: "Found", parent: ROOT_INO, parentPath: "/", name: "", entry: ROOT_ENTRY }
    return { _tag: "Found", ...here(), name: entry.name, entry }
  })

const ROOT_ENTRY: GuestEntry = { ino: ROOT_INO, name: "", kind: "directory", mode: 0o755, uid: 0, gid: 0, size: 0 }

/** Joins a canonical directory path and a name. */
export const childPath = (dir: string, name: string) => (dir === "/" ? `/${name}` : `${dir}/${name}`)
