import * as path from "node:path"
import { type CommandExecutor, FileSystem } from "@effect/platform"
import { Clock, Effect } from "effect"
import { Ext4Error } from "../../domain/errors.js"
import type { BuildExt4Options, Ext4ToolsShape } from "./ext4-tools.js"
import { checkFilesystem } from "./fsck.js"
import { applyMetadata } from "./metadata.js"
import { makeFilesystem } from "./mkfs.js"
import { resolveInodes } from "./resolve.js"

/**
 * The time e2fsprogs stamps on the superblock and on what it makes itself (lost+found): the newest
 * entry mtime, so the same tree gives the same image. Future mtimes are passed over, since e2fsck
 * reports a superblock written in the future; e2fsprogs reads 0 as "use the real clock".
 */
const defaultTimestamp = (options: BuildExt4Options, nowSeconds: number) => {
  let newest = 0
  for (const entry of options.tree.entries) if (entry.mtime <= nowSeconds) newest = Math.max(newest, entry.mtime)
  return newest > 0 ? newest : nowSeconds
}

/**
 * mkfs.ext4 -d copies the tree's contents and shape; one read-only debugfs run then maps every entry
 * to its inode, and one `debugfs -w` run writes the exact metadata. The output is removed if any
 * step fails.
 */
export const build = Effect.fn("ext4.build")(function* (
  options: BuildExt4Options
): Effect.fn.Return<void, Ext4Error, CommandExecutor.CommandExecutor | FileSystem.FileSystem> {
  const fs = yield* FileSystem.FileSystem
  const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
  const timestamp = options.timestamp ?? defaultTimestamp(options, now)
  if (!Number.isSafeInteger(timestamp) || timestamp <= 0) {
    return yield* new Ext4Error({
      tool: "mkfs.ext4",
      reason: `timestamp must be positive seconds, got ${timestamp}`,
      stderr: ""
    })
  }
  const env = { E2FSPROGS_FAKE_TIME: String(timestamp) }
  yield* Effect.scoped(
    Effect.gen(function* () {
      // Next to the output: on banger's state disk, and the debugfs script may name its files.
      const workDir = yield* fs
        .makeTempDirectoryScoped({ directory: path.dirname(path.resolve(options.output)), prefix: ".ext4-build-" })
        .pipe(
          Effect.mapError(
            (error) =>
              new Ext4Error({
                tool: "mkfs.ext4",
                reason: `could not make a work directory: ${error.message}`,
                stderr: ""
              })
          )
        )
      yield* makeFilesystem({ ...options, treeDir: options.tree.dir, workDir, env })
      const inodes = yield* resolveInodes(options.output, options.tree.entries, workDir)
      yield* applyMetadata(options.output, inodes, workDir, env)
    })
  ).pipe(Effect.onError(() => fs.remove(options.output, { force: true }).pipe(Effect.ignore)))
})

export const makeExt4Tools = Effect.gen(function* () {
  const context = yield* Effect.context<CommandExecutor.CommandExecutor | FileSystem.FileSystem>()
  return {
    build: (options) => build(options).pipe(Effect.provide(context)),
    check: (image) => checkFilesystem(image).pipe(Effect.provide(context))
  } satisfies Ext4ToolsShape
})
