import * as path from "node:path"
import { Effect } from "effect"
import { GuestPathError } from "../../domain/errors.js"
import { expressible, type GuestEntry, inodeSpec, quote } from "./debugfs.js"
import { childPath, type DirectoryReader, type Resolution, resolvePath } from "./resolve.js"

export interface Ownership {
  /** Permission bits; 0644 for files and 0755 for directories by default. */
  readonly mode?: number | undefined
  readonly uid?: number | undefined
  readonly gid?: number | undefined
}

/** One change to an image; a batch of them is checked as a whole, then written in one debugfs run. */
export type GuestEdit =
  /** `mkdir -p`; a dangling symlink on the way is an error, as with mkdir -p. */
  | { readonly _tag: "Mkdirp"; readonly path: string; readonly options?: Ownership | undefined }
  /** Creates or replaces a regular file; a final symlink is followed inside the image, as open() would. */
  | {
      readonly _tag: "WriteFile"
      readonly path: string
      readonly content: string | Uint8Array
      readonly options?: Ownership | undefined
    }
  /** A new symlink at `path` (which must not exist), its target stored as given. */
  | { readonly _tag: "Symlink"; readonly path: string; readonly target: string }

export interface EditPlan {
  /** debugfs -w script lines. */
  readonly lines: ReadonlyArray<string>
  /** Host files the script's `write` commands read: name within the temp dir, content. */
  readonly files: ReadonlyArray<readonly [string, string | Uint8Array]>
}

const DIRECTORY = 0o040000
const REGULAR = 0o100000

export const ownershipLines = (name: string, type: number, options: Ownership | undefined, mode: number) => [
  `sif ${quote(name)} mode 0${(type | ((options?.mode ?? mode) & 0o7777)).toString(8)}`,
  `sif ${quote(name)} uid ${options?.uid ?? 0}`,
  `sif ${quote(name)} gid ${options?.gid ?? 0}`
]

/**
 * Resolves every edit against the image as the earlier edits leave it (an overlay of what they
 * create, with inode numbers below zero until debugfs allocates real ones), so that nothing is
 * written unless the whole batch is valid. Directories made in this batch are entered by their
 * canonical path, which holds no symlinks, so debugfs's own lookup cannot go anywhere else.
 */
export const planEdits = <E>(
  disk: DirectoryReader<E>,
  image: string,
  edits: ReadonlyArray<GuestEdit>,
  tempDir: string
): Effect.Effect<EditPlan, E | GuestPathError> =>
  Effect.gen(function* () {
    const added = new Map<number, Array<GuestEntry>>()
    const links = new Map<number, string>()
    let nextIno = -1
    const reader: DirectoryReader<E> = {
      list: (ino) =>
        ino < 0
          ? Effect.succeed(added.get(ino) ?? [])
          : Effect.map(disk.list(ino), (entries) => [...entries, ...(added.get(ino) ?? [])]),
      readLink: (entry) => (entry.ino < 0 ? Effect.succeed(links.get(entry.ino)!) : disk.readLink(entry))
    }
    const add = (parent: number, entry: Omit<GuestEntry, "ino" | "uid" | "gid" | "size">) => {
      const ino = nextIno--
      added.set(parent, [...(added.get(parent) ?? []), { ...entry, ino, uid: 0, gid: 0, size: 0 }])
      return ino
    }
    const lines: Array<string> = []
    const files: Array<readonly [string, string | Uint8Array]> = []
    const enter = (resolution: Resolution) =>
      lines.push(`cd ${resolution.parent < 0 ? quote(resolution.parentPath) : inodeSpec(resolution.parent)}`)

    for (const edit of edits) {
      const fail = (reason: string) => new GuestPathError({ image, path: edit.path, reason })
      const checkNames = (...names: ReadonlyArray<string>) =>
        names.every(expressible) ? Effect.void : Effect.fail(fail("names with newlines cannot be written"))
      const missingParent = (resolution: Resolution & { readonly _tag: "Missing" }) =>
        fail(`${childPath(resolution.parentPath, resolution.name)} does not exist`)

      if (edit._tag === "Mkdirp") {
        for (;;) {
          const resolution = yield* resolvePath(reader, image, edit.path, true)
          if (resolution._tag === "Found") {
            if (resolution.entry.kind !== "directory") return yield* fail("exists and is not a directory")
            break
          }
          if (resolution.viaLink) {
            return yield* fail(
              `a symlink on the way points at ${resolution.parentPath}, which lacks "${resolution.name}"`
            )
          }
          yield* checkNames(resolution.name, resolution.parentPath)
          // Parents get default ownership; only the directory asked for gets the options.
          const own = resolution.remaining.length === 0 ? edit.options : undefined
          enter(resolution)
          lines.push(`mkdir ${quote(resolution.name)}`, ...ownershipLines(resolution.name, DIRECTORY, own, 0o755))
          add(resolution.parent, { name: resolution.name, kind: "directory", mode: own?.mode ?? 0o755 })
        }
      } else if (edit._tag === "WriteFile") {
        const resolution = yield* resolvePath(reader, image, edit.path, true)
        if (resolution._tag === "Missing" && resolution.remaining.length > 0) return yield* missingParent(resolution)
        if (resolution._tag === "Found" && resolution.entry.kind !== "file") {
          return yield* fail(`is a ${resolution.entry.kind}, not a regular file`)
        }
        if (resolution.name === "") return yield* fail("is the image's root directory")
        yield* checkNames(resolution.name, resolution.parentPath)
        const hostFile = path.join(tempDir, `content-${files.length}`)
        files.push([hostFile, edit.content])
        enter(resolution)
        if (resolution._tag === "Found") lines.push(`rm ${quote(resolution.name)}`)
        else add(resolution.parent, { name: resolution.name, kind: "file", mode: edit.options?.mode ?? 0o644 })
        lines.push(
          `write ${quote(hostFile)} ${quote(resolution.name)}`,
          ...ownershipLines(resolution.name, REGULAR, edit.options, 0o644)
        )
      } else {
        const resolution = yield* resolvePath(reader, image, edit.path, false)
        if (resolution._tag === "Found") return yield* fail("already exists")
        if (resolution.remaining.length > 0) return yield* missingParent(resolution)
        yield* checkNames(resolution.name, resolution.parentPath, edit.target)
        enter(resolution)
        lines.push(`symlink ${quote(resolution.name)} ${quote(edit.target)}`)
        links.set(add(resolution.parent, { name: resolution.name, kind: "symlink", mode: 0o777 }), edit.target)
      }
    }
    return { lines, files }
  })
