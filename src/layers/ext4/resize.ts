import * as fs from "node:fs/promises"
import type { CommandExecutor } from "@effect/platform"
import { Effect } from "effect"
import { Ext4Error } from "../../domain/errors.js"
import { runToolText } from "./process.js"

const BLOCK_SIZE = 4096

/**
 * `e2fsck -fp`: fixes what is safe to fix without asking. Exit 0 (clean) and 1 (errors corrected)
 * leave a usable filesystem; 2 only matters for a mounted root; 4 and up mean it is not usable.
 */
export const repairFilesystem = Effect.fn("ext4.repair")(function* (
  image: string
): Effect.fn.Return<void, Ext4Error, CommandExecutor.CommandExecutor> {
  const result = yield* runToolText({ tool: "e2fsck", args: ["-fp", image], env: { E2FSCK_CONFIG: "/dev/null" } })
  if (result.exitCode > 2) {
    return yield* new Ext4Error({
      tool: "e2fsck",
      reason: `${image} could not be repaired (exit ${result.exitCode})`,
      stderr: `${result.stdout}${result.stderr}`
    })
  }
})

/**
 * Extends the image file to `sizeBytes` (sparsely) and grows its filesystem to fill it with
 * `resize2fs`. resize2fs wants a freshly checked filesystem, so callers repair first. Sizes are
 * taken down to whole 4 KiB blocks.
 */
export const growFilesystem = Effect.fn("ext4.grow")(function* (
  image: string,
  sizeBytes: number
): Effect.fn.Return<void, Ext4Error, CommandExecutor.CommandExecutor> {
  const blocks = Math.floor(sizeBytes / BLOCK_SIZE)
  yield* Effect.tryPromise({
    try: () => fs.truncate(image, blocks * BLOCK_SIZE),
    catch: (error) =>
      new Ext4Error({ tool: "resize2fs", reason: `cannot extend ${image}: ${String(error)}`, stderr: "" })
  })
  // Without a unit, resize2fs reads the size in the filesystem's own blocks; K is unambiguous.
  const result = yield* runToolText({ tool: "resize2fs", args: [image, `${blocks * (BLOCK_SIZE / 1024)}K`] })
  if (result.exitCode !== 0) {
    return yield* new Ext4Error({
      tool: "resize2fs",
      reason: `cannot grow ${image} to ${blocks * BLOCK_SIZE} bytes (exit ${result.exitCode})`,
      stderr: `${result.stdout}${result.stderr}`
    })
  }
})
