import * as fs from "node:fs"
import * as path from "node:path"
import type { CommandExecutor } from "@effect/platform"
import { Clock, Effect, Exit } from "effect"
import { ContentFailure, type StoredContent } from "../../domain/content.js"
import { type FlatEntries, isEntryList } from "../../domain/entry-list.js"
import { Ext4Error } from "../../domain/errors.js"
import type { FlatTree, TreeEntry } from "../../domain/tree.js"
import type { BuildExt4Options, Ext4ToolsShape, ImageDraft, OpenDraftOptions, PlannedImage } from "./ext4-tools.js"
import { checkFilesystem } from "./fsck.js"
import { ImageDraftFile } from "./image/draft.js"
import type { Geometry } from "./image/layout.js"
import { growFilesystem, repairFilesystem } from "./resize.js"

const TOOL = "ext4 writer"

const failure = (reason: string) => new Ext4Error({ tool: TOOL, reason, stderr: "" })

const describe = (error: unknown) => {
  if (error instanceof ContentFailure) return error.error.reason
  const code = (error as NodeJS.ErrnoException)?.code
  const message = error instanceof Error ? error.message : String(error)
  return code && !message.includes(code) ? `${code}: ${message}` : message
}

/** Runs synchronous draft work, turning what it throws into an Ext4Error. */
const attempt = <A>(what: string, run: () => A) =>
  Effect.try({ try: run, catch: (error) => failure(`${what}: ${describe(error)}`) })

/**
 * The time stamped on the superblock and on what the writer makes itself (lost+found, the
 * journal): the newest entry mtime, so the same tree gives the same image. Future mtimes are passed
 * over, since e2fsck reports a superblock written in the future.
 */
const defaultTimestamp = (entries: FlatEntries, nowSeconds: number) => {
  let newest = 0
  const consider = (mtime: number) => {
    if (mtime <= nowSeconds) newest = Math.max(newest, mtime)
  }
  if (isEntryList(entries)) for (let index = 0; index < entries.length; index++) consider(entries.mtime(index))
  else for (const entry of entries) consider(entry.mtime)
  return newest > 0 ? newest : nowSeconds
}

const planned = (draft: ImageDraftFile, entries: FlatEntries, timestamp: number | undefined) =>
  Effect.gen(function* () {
    const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
    const stamp = timestamp ?? defaultTimestamp(entries, now)
    if (!Number.isSafeInteger(stamp) || stamp <= 0 || stamp >= 2 ** 32) {
      return yield* failure(`timestamp must be positive seconds, got ${stamp}`)
    }
    const plan = yield* attempt("could not lay out the tree", () => draft.plan(entries, stamp))
    if (typeof plan === "string") return yield* failure(plan)
    let written = false
    /** The filesystem for this size, or why the tree cannot be written at it. */
    const geometryFor = (sizeBytes: number, inodes?: number): Geometry | string => {
      if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0)
        return `size must be a positive whole number of bytes, got ${sizeBytes}`
      if (inodes !== undefined && (!Number.isSafeInteger(inodes) || inodes <= 0))
        return `inode count must be a positive whole number, got ${inodes}`
      return plan.geometry(sizeBytes, inodes)
    }
    const misfit = (sizeBytes: number, inodes?: number) => {
      const geometry = geometryFor(sizeBytes, inodes)
      return typeof geometry === "string" ? geometry : undefined
    }
    return {
      requiredBytes: plan.requiredBytes,
      usedInodes: plan.usedInodes,
      misfit,
      write: ({ sizeBytes, inodes, label }) =>
        Effect.suspend(() => {
          if (written) return failure("the image is already written")
          if (label !== undefined && Buffer.byteLength(label) > 16) {
            return failure(`label "${label}" is longer than ext4's 16 bytes`)
          }
          const geometry = geometryFor(sizeBytes, inodes)
          if (typeof geometry === "string") {
            return failure(`the tree does not fit a ${sizeBytes}-byte image: ${geometry}`)
          }
          written = true
          return attempt(`could not write ${draft.path}`, () => plan.write({ sizeBytes, geometry, label })).pipe(
            Effect.zipRight(
              Effect.tryPromise({
                try: () => draft.contents.sync(),
                catch: (error) => failure(`could not write ${draft.path}: ${describe(error)}`)
              })
            )
          )
        })
    } satisfies PlannedImage
  })

/** A draft at `output`, closed with its scope and removed if the scope fails. */
export const openDraft = (options: OpenDraftOptions) =>
  Effect.acquireRelease(
    attempt(`could not create ${options.output}`, () =>
      ImageDraftFile.open(options.output, { uuid: options.uuid, maxBytes: options.maxBytes })
    ),
    (draft, exit) =>
      Effect.promise(() => draft.close()).pipe(
        Effect.andThen(() => {
          if (Exit.isFailure(exit)) fs.rmSync(options.output, { force: true })
        })
      )
  ).pipe(
    Effect.map(
      (draft): ImageDraft => ({
        contents: draft.contents,
        plan: (entries, planOptions) => planned(draft, entries, planOptions?.timestamp)
      })
    )
  )

const COPY_CHUNK = 1024 * 1024

/** Copies a regular file of the tree directory into the draft. */
const copyFile = (draft: ImageDraft, file: string, entry: TreeEntry, buffer: Buffer): StoredContent => {
  let fd: number
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new Error(`${JSON.stringify(entry.path)} is missing from the tree directory`)
    }
    throw error
  }
  try {
    const stat = fs.fstatSync(fd)
    if (!stat.isFile()) throw new Error(`${JSON.stringify(entry.path)} is not a regular file in the tree directory`)
    if (stat.size !== entry.size) {
      throw new Error(
        `${JSON.stringify(entry.path)} holds ${stat.size} bytes in the tree directory, ${entry.size} in the entries`
      )
    }
    const writer = draft.contents.begin(entry.size)
    let offset = 0
    while (offset < entry.size) {
      const count = fs.readSync(fd, buffer, 0, Math.min(COPY_CHUNK, entry.size - offset), offset)
      if (count === 0) throw new Error(`${JSON.stringify(entry.path)} shrank while it was copied`)
      writer.write(buffer.subarray(0, count))
      offset += count
    }
    return writer.finish()
  } finally {
    fs.closeSync(fd)
  }
}

/** Copies the contents of the tree's regular files into the draft: the entries, each with its `content`. */
export const copyTreeInto = (draft: ImageDraft, tree: FlatTree) =>
  attempt("could not copy the tree", () => {
    const buffer = Buffer.allocUnsafe(COPY_CHUNK)
    return tree.entries.map((entry) =>
      entry.type === "file" && entry.hardlinkTo === undefined
        ? { ...entry, content: copyFile(draft, path.join(tree.dir, entry.path), entry, buffer) }
        : entry
    )
  })

/**
 * An image of a tree on disk: the contents of its regular files are copied into a draft, and the
 * entries alone say what the image holds and with which metadata. The output is removed if any
 * step fails.
 */
export const build = Effect.fn("ext4.build")(function* (options: BuildExt4Options) {
  yield* Effect.scoped(
    Effect.gen(function* () {
      const draft = yield* openDraft({ output: options.output, uuid: options.uuid, maxBytes: options.sizeBytes })
      const entries = yield* copyTreeInto(draft, options.tree)
      const image = yield* draft.plan(entries, { timestamp: options.timestamp })
      yield* image.write({ sizeBytes: options.sizeBytes, inodes: options.inodes, label: options.label })
    })
  )
})

export const makeExt4Tools = Effect.gen(function* () {
  const context = yield* Effect.context<CommandExecutor.CommandExecutor>()
  return {
    openDraft,
    build,
    check: (image) => checkFilesystem(image).pipe(Effect.provide(context)),
    repair: (image) => repairFilesystem(image).pipe(Effect.provide(context)),
    grow: (image, sizeBytes) => growFilesystem(image, sizeBytes).pipe(Effect.provide(context))
  } satisfies Ext4ToolsShape
})
