import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import type { CommandExecutor } from "@effect/platform"
import { Context, Effect, FiberRef, Layer } from "effect"
import { type Ext4Error, GuestPathError } from "../../domain/errors.js"
import {
  expressible,
  type GuestEntry,
  inodeSpec,
  lineFits,
  listDirectory,
  quote,
  readLink,
  request,
  writeScript
} from "./debugfs.js"
import { type GuestEdit, type Ownership, ownershipLines, planEdits } from "./edit.js"
import { type GuestFsFake, makeGuestFsFake } from "./guest-fs-fake.js"
import { emptyCache, forget, type ImageCache, readAhead, type WantedPath } from "./read-ahead.js"
import { childPath, type DirectoryReader, type Resolution, resolvePath } from "./resolve.js"

export type { GuestEntry, GuestKind } from "./debugfs.js"

export type GuestFsError = GuestPathError | Ext4Error

export type { GuestEdit, Ownership } from "./edit.js"

export interface ReadAheadPaths {
  /** Paths the caller will look up (stat, exists, realpath, edits); missing ones are fine. */
  readonly paths?: ReadonlyArray<string> | undefined
  /** Files the caller will read whole. */
  readonly files?: ReadonlyArray<string> | undefined
}

/** What readAhead learned: opaque outside GuestFs (the fake keeps only the paths asked for). */
export interface GuestReads {
  readonly paths: ReadAheadPaths
  readonly cache?: ImageCache | undefined
}

export interface CopyInSummary {
  readonly files: number
  readonly directories: number
  readonly symlinks: number
  readonly bytes: number
}

/**
 * Files inside an unmounted ext4 image, through debugfs: no mount, no root needed. Every path is
 * resolved within the image like a chroot (see resolvePath): symlinks inside the image are
 * followed there, nothing is ever looked up on the host, and what cannot be resolved inside the
 * image is a GuestPathError.
 */
export interface GuestFsShape {
  /** The entry at `path`, symlinks followed; undefined when it does not exist. */
  readonly stat: (image: string, path: string) => Effect.Effect<GuestEntry | undefined, GuestFsError>
  /** Like stat, but a final symlink is returned itself. */
  readonly lstat: (image: string, path: string) => Effect.Effect<GuestEntry | undefined, GuestFsError>
  readonly exists: (image: string, path: string) => Effect.Effect<boolean, GuestFsError>
  /** The path with every symlink resolved inside the image, or undefined when it does not exist. */
  readonly realpath: (image: string, path: string) => Effect.Effect<string | undefined, GuestFsError>
  readonly readFile: (image: string, path: string) => Effect.Effect<Uint8Array, GuestFsError>
  /**
   * Creates or replaces a regular file. A final symlink is followed inside the image (as open()
   * would); the directory it lands in must exist.
   */
  readonly writeFile: (
    image: string,
    path: string,
    content: string | Uint8Array,
    options?: Ownership
  ) => Effect.Effect<void, GuestFsError>
  /**
   * Several edits in one debugfs run: all of them are resolved first (each seeing the ones before
   * it), and nothing is written unless every one is valid.
   */
  readonly apply: (image: string, edits: ReadonlyArray<GuestEdit>) => Effect.Effect<void, GuestFsError>
  /**
   * Reads now, in one or two debugfs runs, what looking up `paths` will need (each directory and
   * link on the way) and the content of `files`: for batchReads on this image, or on an
   * unmodified copy of it (a work disk being cloned from it, say).
   */
  readonly readAhead: (image: string, paths: ReadAheadPaths) => Effect.Effect<GuestReads, GuestFsError>
  /**
   * Runs `use` with the reads of `image` served from `reads` (made by readAhead of this image or
   * of the image it is an unmodified copy of); whatever else `use` reads is read once and kept
   * there. A write to the image inside `use` drops what was learned. Results are those of
   * unbatched reads, in fewer debugfs runs.
   */
  readonly batchReads: <A, E, R>(
    image: string,
    reads: GuestReads,
    use: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E, R>
  /** `mkdir -p`: creates what is missing; a dangling symlink on the way is an error, as with mkdir -p. */
  readonly mkdirp: (image: string, path: string, options?: Ownership) => Effect.Effect<void, GuestFsError>
  /** A new symlink at `path` (which must not exist) pointing at `target`, stored as given. */
  readonly symlink: (image: string, path: string, target: string) => Effect.Effect<void, GuestFsError>
  /** The entries of the directory at `path`, symlinks followed. */
  readonly list: (image: string, path: string) => Effect.Effect<ReadonlyArray<GuestEntry>, GuestFsError>
  /**
   * Copies the host directory `hostDir` recursively to `path` (created with its parents; must not
   * exist yet) in one debugfs run: modes kept, owned by uid/gid 0 unless given.
   */
  readonly copyIn: (
    image: string,
    hostDir: string,
    path: string,
    options?: { readonly uid?: number; readonly gid?: number }
  ) => Effect.Effect<CopyInSummary, GuestFsError>
}

/** The caches of the images whose reads this fiber batches (see batchReads). */
const batched = FiberRef.unsafeMake<ReadonlyMap<string, ImageCache>>(new Map())

const make = Effect.gen(function* () {
  const executor = yield* Effect.context<CommandExecutor.CommandExecutor>()
  const provide = <A, E>(effect: Effect.Effect<A, E, CommandExecutor.CommandExecutor>) =>
    Effect.provide(effect, executor)

  /** The batch's cache of `image`, else one for this call alone. */
  const cacheOf = (image: string) => Effect.map(FiberRef.get(batched), (caches) => caches.get(image) ?? emptyCache())

  /** The cache first; what it lacks is read one request at a time, and kept. */
  const readerFor = (image: string, cache: ImageCache): DirectoryReader<Ext4Error> => ({
    list: (ino) => {
      const known = cache.listings.get(ino)
      return known !== undefined
        ? Effect.succeed(known)
        : Effect.tap(provide(listDirectory(image, ino)), (entries) =>
            Effect.sync(() => cache.listings.set(ino, entries))
          )
    },
    readLink: (entry) => {
      const known = cache.links.get(entry.ino)
      return known !== undefined && Buffer.byteLength(known, "utf8") === entry.size
        ? Effect.succeed(known)
        : Effect.tap(provide(readLink(image, entry)), (target) => Effect.sync(() => cache.links.set(entry.ino, target)))
    }
  })
  const resolveIn = (image: string, cache: ImageCache, target: string, followFinal: boolean, content = false) =>
    Effect.zipRight(
      provide(readAhead(image, cache, [{ path: target, followFinal, content }])),
      resolvePath(readerFor(image, cache), image, target, followFinal)
    )
  const resolve = (image: string, target: string, followFinal: boolean) =>
    Effect.flatMap(cacheOf(image), (cache) => resolveIn(image, cache, target, followFinal))
  const fail = (image: string, target: string, reason: string) => new GuestPathError({ image, path: target, reason })

  const found = (resolution: Resolution) => (resolution._tag === "Found" ? resolution.entry : undefined)

  const withTempDir = <A, E>(use: (dir: string) => Effect.Effect<A, E>) =>
    Effect.acquireUseRelease(
      Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "banger-guest-"))),
      use,
      (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
    )

  const hostFailure = (image: string, target: string) => (error: unknown) =>
    fail(image, target, `host side of the copy failed: ${String(error)}`)

  /** Whatever the image held before a write may have changed; the cache starts over. */
  const writing = <A, E>(cache: ImageCache, write: Effect.Effect<A, E>) =>
    Effect.ensuring(
      write,
      Effect.sync(() => forget(cache))
    )

  const stat: GuestFsShape["stat"] = (image, target) => Effect.map(resolve(image, target, true), found)
  const lstat: GuestFsShape["lstat"] = (image, target) => Effect.map(resolve(image, target, false), found)

  const readAheadOf: GuestFsShape["readAhead"] = (image, paths) =>
    Effect.gen(function* () {
      const cache = emptyCache()
      const files = new Set(paths.files ?? [])
      const wanted: Array<WantedPath> = [
        ...(paths.paths ?? []).filter((p) => !files.has(p)).map((p) => ({ path: p, followFinal: true })),
        ...[...files].map((p) => ({ path: p, followFinal: true, content: true }))
      ]
      yield* provide(readAhead(image, cache, wanted))
      return { paths, cache }
    })

  const batchReads: GuestFsShape["batchReads"] = (image, reads, use) =>
    Effect.locallyWith(use, batched, (caches) => new Map(caches).set(image, reads.cache ?? emptyCache()))

  const apply: GuestFsShape["apply"] = (image, edits) =>
    withTempDir((dir) =>
      Effect.gen(function* () {
        const cache = yield* cacheOf(image)
        // Every edit's path up front, in one run: planning then looks each up through the cache.
        yield* provide(
          readAhead(
            image,
            cache,
            edits.map((edit) => ({ path: edit.path, followFinal: edit._tag !== "Symlink" }))
          )
        )
        const plan = yield* planEdits(readerFor(image, cache), image, edits, dir)
        if (plan.lines.length === 0) return
        const tooLong = plan.lines.find((line) => !lineFits(line))
        if (tooLong !== undefined) {
          return yield* fail(image, edits[0]?.path ?? "/", `a path is too long for debugfs: ${tooLong.slice(0, 80)}…`)
        }
        yield* Effect.tryPromise({
          try: () => Promise.all(plan.files.map(([file, content]) => fs.writeFile(file, content))),
          catch: hostFailure(image, edits[0]?.path ?? "/")
        })
        yield* writing(cache, provide(writeScript(image, plan.lines)))
      })
    )

  const mkdirp: GuestFsShape["mkdirp"] = (image, target, options) =>
    apply(image, [{ _tag: "Mkdirp", path: target, options }])
  const writeFile: GuestFsShape["writeFile"] = (image, target, content, options) =>
    apply(image, [{ _tag: "WriteFile", path: target, content, options }])
  const symlink: GuestFsShape["symlink"] = (image, target, linkTarget) =>
    apply(image, [{ _tag: "Symlink", path: target, target: linkTarget }])

  const readFile: GuestFsShape["readFile"] = (image, target) =>
    Effect.gen(function* () {
      const cache = yield* cacheOf(image)
      const entry = found(yield* resolveIn(image, cache, target, true, true))
      if (entry === undefined) return yield* fail(image, target, "does not exist")
      if (entry.kind !== "file") return yield* fail(image, target, `is a ${entry.kind}, not a regular file`)
      const known = cache.contents.get(entry.ino)
      if (known !== undefined && known.length === entry.size) return known
      return new Uint8Array(yield* provide(request(image, `cat ${inodeSpec(entry.ino)}`)))
    })

  const list: GuestFsShape["list"] = (image, target) =>
    Effect.gen(function* () {
      const cache = yield* cacheOf(image)
      const entry = found(yield* resolveIn(image, cache, target, true))
      if (entry === undefined) return yield* fail(image, target, "does not exist")
      if (entry.kind !== "directory") return yield* fail(image, target, "is not a directory")
      return yield* readerFor(image, cache).list(entry.ino)
    })

  const copyIn: GuestFsShape["copyIn"] = (image, hostDir, target, options) =>
    Effect.gen(function* () {
      if ((yield* resolve(image, target, false))._tag === "Found") return yield* fail(image, target, "already exists")
      yield* mkdirp(image, target)
      const dest = yield* resolve(image, target, true)
      if (dest._tag !== "Found") return yield* fail(image, target, "vanished while copying")
      const own = { uid: options?.uid ?? 0, gid: options?.gid ?? 0 }
      const summary = { files: 0, directories: 0, symlinks: 0, bytes: 0 }
      const lines: Array<string> = []
      const walk = async (relative: string) => {
        const cd = `cd ${inodeSpec(dest.entry.ino)}`
        lines.push(cd)
        if (relative !== "") lines.push(`cd ${quote(relative)}`)
        const entries = await fs.readdir(path.join(hostDir, relative), { withFileTypes: true })
        const subdirs: Array<string> = []
        for (const entry of entries) {
          const host = path.join(hostDir, relative, entry.name)
          if (!expressible(entry.name)) throw new Error(`${host}: names with newlines cannot be written`)
          if (entry.isDirectory()) {
            const info = await fs.stat(host)
            lines.push(
              `mkdir ${quote(entry.name)}`,
              ...ownershipLines(entry.name, 0o040000, { ...own, mode: info.mode }, 0o755)
            )
            subdirs.push(relative === "" ? entry.name : `${relative}/${entry.name}`)
            summary.directories++
          } else if (entry.isSymbolicLink()) {
            lines.push(`symlink ${quote(entry.name)} ${quote(await fs.readlink(host))}`)
            summary.symlinks++
          } else if (entry.isFile()) {
            const info = await fs.stat(host)
            lines.push(
              `write ${quote(host)} ${quote(entry.name)}`,
              ...ownershipLines(entry.name, 0o100000, { ...own, mode: info.mode }, 0o644)
            )
            summary.files++
            summary.bytes += info.size
          }
        }
        for (const subdir of subdirs) await walk(subdir)
      }
      yield* Effect.tryPromise({ try: () => walk(""), catch: hostFailure(image, target) })
      const tooLong = lines.find((line) => !lineFits(line))
      if (tooLong !== undefined)
        return yield* fail(image, target, `a path is too long for debugfs: ${tooLong.slice(0, 80)}…`)
      yield* writing(yield* cacheOf(image), provide(writeScript(image, lines)))
      return summary
    })

  return {
    apply,
    readAhead: readAheadOf,
    batchReads,
    stat,
    lstat,
    exists: (image, target) => Effect.map(stat(image, target), (entry) => entry !== undefined),
    realpath: (image, target) =>
      Effect.map(resolve(image, target, true), (resolution) =>
        resolution._tag === "Found" ? childPath(resolution.parentPath, resolution.name) : undefined
      ),
    readFile,
    writeFile,
    mkdirp,
    symlink,
    list,
    copyIn
  } satisfies GuestFsShape
})

export class GuestFs extends Context.Tag("banger/GuestFs")<GuestFs, GuestFsShape>() {
  /** debugfs from e2fsprogs; needs `NodeContext.layer` (CommandExecutor). */
  static readonly layer = Layer.effect(GuestFs, make)

  /** For pipeline unit tests: an in-memory image (see makeGuestFsFake); read `fake.nodes` after. */
  static readonly layerTest = (fake: GuestFsFake = makeGuestFsFake()) => Layer.succeed(GuestFs, fake.fs)
}

export { type FakeNode, type GuestFsFake, makeGuestFsFake } from "./guest-fs-fake.js"
