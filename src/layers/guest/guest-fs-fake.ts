import { Effect } from "effect"
import { GuestPathError } from "../../domain/errors.js"
import { type GuestEntry, type GuestKind, ROOT_INO } from "./debugfs.js"
import type { GuestEdit } from "./edit.js"
import type { GuestFsShape, ReadAheadPaths } from "./guest-fs.js"
import { childPath, type DirectoryReader, resolvePath } from "./resolve.js"

/** One entry of the fake's image, by canonical path. */
export interface FakeNode {
  readonly kind: GuestKind
  readonly mode: number
  readonly uid: number
  readonly gid: number
  readonly content?: Uint8Array
  readonly target?: string
}

export interface GuestFsFake {
  readonly fs: GuestFsShape
  /** The image's entries by canonical path ("/" is the root); edit freely before a test. */
  readonly nodes: Map<string, FakeNode>
  /** Every batch `apply` (and the single-edit methods) received, in order. */
  readonly applied: Array<ReadonlyArray<GuestEdit>>
  readonly copies: Array<{ readonly hostDir: string; readonly path: string }>
  /** What each readAhead was asked to read. */
  readonly readAheads: Array<ReadAheadPaths>
}

const dirname = (p: string) => (p.lastIndexOf("/") <= 0 ? "/" : p.slice(0, p.lastIndexOf("/")))
const basename = (p: string) => p.slice(p.lastIndexOf("/") + 1)

/**
 * An in-memory GuestFs for pipeline unit tests: one image (the `image` argument is ignored), paths
 * resolved by the real resolvePath, so symlinks behave as in the real service. Pass `files` as
 * `path -> content` (directories on the way are created) and `links` as `path -> target`.
 */
export const makeGuestFsFake = (
  files: Record<string, string | Uint8Array> = {},
  links: Record<string, string> = {}
): GuestFsFake => {
  const nodes = new Map<string, FakeNode>([["/", { kind: "directory", mode: 0o755, uid: 0, gid: 0 }]])
  const ensureDir = (dir: string) => {
    if (dir === "/" || nodes.has(dir)) return
    ensureDir(dirname(dir))
    nodes.set(dir, { kind: "directory", mode: 0o755, uid: 0, gid: 0 })
  }
  for (const [p, content] of Object.entries(files)) {
    ensureDir(dirname(p))
    const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content
    nodes.set(p, { kind: "file", mode: 0o755, uid: 0, gid: 0, content: bytes })
  }
  for (const [p, target] of Object.entries(links)) {
    ensureDir(dirname(p))
    nodes.set(p, { kind: "symlink", mode: 0o777, uid: 0, gid: 0, target })
  }

  // Inode numbers are positions in a snapshot of the paths, taken for each lookup.
  const reader = (): DirectoryReader<never> & { readonly pathOf: (ino: number) => string } => {
    const paths = [...nodes.keys()]
    const inoOf = (p: string) => (p === "/" ? ROOT_INO : paths.indexOf(p) + 100)
    const pathOf = (ino: number) => (ino === ROOT_INO ? "/" : paths[ino - 100]!)
    const entry = (p: string): GuestEntry => {
      const node = nodes.get(p)!
      const size = node.kind === "symlink" ? node.target!.length : (node.content?.length ?? 0)
      return { ino: inoOf(p), name: basename(p), kind: node.kind, mode: node.mode, uid: node.uid, gid: node.gid, size }
    }
    return {
      pathOf,
      list: (ino) =>
        Effect.sync(() => paths.filter((p) => p !== "/" && dirname(p) === pathOf(ino)).map((p) => entry(p))),
      readLink: (link) => Effect.sync(() => nodes.get(pathOf(link.ino))!.target!)
    }
  }
  const resolve = (image: string, p: string, followFinal: boolean) => resolvePath(reader(), image, p, followFinal)
  const fail = (image: string, p: string, reason: string) => new GuestPathError({ image, path: p, reason })
  const canonical = (parentPath: string, name: string) => (name === "" ? "/" : childPath(parentPath, name))

  const applyOne = (image: string, edit: GuestEdit): Effect.Effect<void, GuestPathError> =>
    Effect.gen(function* () {
      if (edit._tag === "Mkdirp") {
        for (;;) {
          const r = yield* resolve(image, edit.path, true)
          if (r._tag === "Found") {
            if (r.entry.kind !== "directory") return yield* fail(image, edit.path, "exists and is not a directory")
            return
          }
          if (r.viaLink) return yield* fail(image, edit.path, "a symlink on the way is dangling")
          const own = r.remaining.length === 0 ? edit.options : undefined
          nodes.set(childPath(r.parentPath, r.name), {
            kind: "directory",
            mode: own?.mode ?? 0o755,
            uid: own?.uid ?? 0,
            gid: own?.gid ?? 0
          })
        }
      }
      const r = yield* resolve(image, edit.path, edit._tag === "WriteFile")
      if (r._tag === "Missing" && r.remaining.length > 0) {
        return yield* fail(image, edit.path, `${childPath(r.parentPath, r.name)} does not exist`)
      }
      const at = canonical(r.parentPath, r.name)
      if (edit._tag === "Symlink") {
        if (r._tag === "Found") return yield* fail(image, edit.path, "already exists")
        nodes.set(at, { kind: "symlink", mode: 0o777, uid: 0, gid: 0, target: edit.target })
        return
      }
      if (r._tag === "Found" && r.entry.kind !== "file") {
        return yield* fail(image, edit.path, `is a ${r.entry.kind}, not a regular file`)
      }
      const content = typeof edit.content === "string" ? new TextEncoder().encode(edit.content) : edit.content
      const options = edit.options
      nodes.set(at, {
        kind: "file",
        mode: options?.mode ?? 0o644,
        uid: options?.uid ?? 0,
        gid: options?.gid ?? 0,
        content
      })
    })

  const found = (image: string, p: string, followFinal: boolean) =>
    Effect.map(resolve(image, p, followFinal), (r) => (r._tag === "Found" ? r : undefined))

  const fake: GuestFsFake = {
    nodes,
    applied: [],
    copies: [],
    readAheads: [],
    fs: {
      apply: (image, edits) =>
        Effect.suspend(() => {
          fake.applied.push(edits)
          // Like the real service: check the whole batch on a copy, then keep it.
          const saved = new Map(nodes)
          return Effect.tapError(
            Effect.forEach(edits, (edit) => applyOne(image, edit), { discard: true }),
            () =>
              Effect.sync(() => {
                nodes.clear()
                for (const [key, value] of saved) nodes.set(key, value)
              })
          )
        }),
      // Nothing to batch in memory; what was asked for is recorded for tests that care.
      readAhead: (_image, paths) =>
        Effect.sync(() => {
          fake.readAheads.push(paths)
          return { paths }
        }),
      batchReads: (_image, _reads, use) => use,
      stat: (image, p) => Effect.map(found(image, p, true), (r) => r?.entry),
      lstat: (image, p) => Effect.map(found(image, p, false), (r) => r?.entry),
      exists: (image, p) => Effect.map(found(image, p, true), (r) => r !== undefined),
      realpath: (image, p) => Effect.map(found(image, p, true), (r) => r && canonical(r.parentPath, r.name)),
      readFile: (image, p) =>
        Effect.flatMap(found(image, p, true), (r) =>
          r?.entry.kind === "file"
            ? Effect.succeed(nodes.get(canonical(r.parentPath, r.name))!.content ?? new Uint8Array())
            : Effect.fail(fail(image, p, "is not a regular file"))
        ),
      writeFile: (image, p, content, options) =>
        fake.fs.apply(image, [{ _tag: "WriteFile", path: p, content, options }]),
      mkdirp: (image, p, options) => fake.fs.apply(image, [{ _tag: "Mkdirp", path: p, options }]),
      symlink: (image, p, target) => fake.fs.apply(image, [{ _tag: "Symlink", path: p, target }]),
      list: (image, p) =>
        Effect.flatMap(found(image, p, true), (r) =>
          r?.entry.kind === "directory" ? reader().list(r.entry.ino) : Effect.fail(fail(image, p, "is not a directory"))
        ),
      copyIn: (image, hostDir, p) =>
        Effect.gen(function* () {
          fake.copies.push({ hostDir, path: p })
          yield* fake.fs.mkdirp(image, p)
          return { files: 0, directories: 0, symlinks: 0, bytes: 0 }
        })
    }
  }
  return fake
}
