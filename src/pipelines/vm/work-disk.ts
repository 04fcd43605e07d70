import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { Effect, Exit, type Scope } from "effect"
import { type Ext4Error, FilesystemError, type InvalidSize, SizeTooSmall } from "../../domain/errors.js"
import { DiskCopy } from "../../layers/disk/disk-copy.js"
import { Ext4Tools } from "../../layers/ext4/ext4-tools.js"
import { parseSize } from "../pull/size.js"

export const DEFAULT_DISK_SIZE_BYTES = 8 * 2 ** 30
export const WORK_DISK_NAME = "disk.ext4"

/** `--disk-size` as given on the command line; absent means the 8 GiB default. */
export const parseDiskSize = (input: string | undefined): Effect.Effect<number, InvalidSize> =>
  input === undefined ? Effect.succeed(DEFAULT_DISK_SIZE_BYTES) : parseSize(input)

export interface WorkDiskOptions {
  /** The image's rootfs.ext4, never modified. */
  readonly rootfs: string
  /** The VM's directory; the disk becomes `<vmDir>/disk.ext4`. */
  readonly vmDir: string
  readonly sizeBytes: number
  /**
   * The rootfs is one banger wrote, checked clean (`e2fsck -fn`) and never wrote again: a pulled
   * image's (VMs only ever get clones of it). Its clone holds the same bytes, so an `e2fsck -fp`
   * before growing would only read them all again to find nothing. Registered images (the
   * user's file, changed or mounted whenever) and promoted ones (copies of those) are repaired
   * first. Should resize2fs still ask for a check (the file was mounted since, say), it gets one.
   */
  readonly checkedClean?: boolean | undefined
}

/** resize2fs refuses a filesystem not checked since it was last mounted, or marked unclean. */
const wantsCheck = (error: Ext4Error) => error.tool === "resize2fs" && error.stderr.includes("Please run 'e2fsck -f")

export interface WorkDisk {
  readonly disk: string
  /**
   * e2fsck went over it: it may differ from the image in more than its size (what was read from
   * the image beforehand may not hold for it).
   */
  readonly repaired: boolean
}

/**
 * The VM's own disk: a copy of the image's rootfs (a reflink where the filesystem shares blocks,
 * else a sparse copy), repaired and grown to `sizeBytes`. The disk belongs to the caller's scope:
 * it is removed if that scope closes with a failure, whichever later step failed.
 */
export const makeWorkDisk = Effect.fn("vm.createWorkDisk")(function* (
  options: WorkDiskOptions
): Effect.fn.Return<
  WorkDisk,
  SizeTooSmall | FilesystemError | Ext4Error,
  DiskCopy | Ext4Tools | FileSystem.FileSystem | Scope.Scope
> {
  const fs = yield* FileSystem.FileSystem
  const disks = yield* DiskCopy
  const ext4 = yield* Ext4Tools
  const disk = path.join(options.vmDir, WORK_DISK_NAME)
  const info = yield* fs
    .stat(options.rootfs)
    .pipe(Effect.mapError((error) => new FilesystemError({ path: options.rootfs, reason: error.message })))
  const imageBytes = Number(info.size)
  if (options.sizeBytes < imageBytes) {
    return yield* new SizeTooSmall({
      requestedBytes: options.sizeBytes,
      requiredBytes: imageBytes,
      reason: "a work disk cannot be smaller than its image's filesystem"
    })
  }
  yield* Effect.acquireRelease(disks.copy(options.rootfs, disk), (_, exit) =>
    Exit.isFailure(exit) ? fs.remove(disk, { force: true }).pipe(Effect.ignore) : Effect.void
  )
  if (options.sizeBytes <= imageBytes) return { disk, repaired: false }
  const repairAndGrow = ext4
    .repair(disk)
    .pipe(Effect.zipRight(ext4.grow(disk, options.sizeBytes)), Effect.as({ disk, repaired: true }))
  if (options.checkedClean !== true) return yield* repairAndGrow
  return yield* ext4.grow(disk, options.sizeBytes).pipe(
    Effect.as({ disk, repaired: false }),
    Effect.catchIf(wantsCheck, () => repairAndGrow)
  )
})

/** makeWorkDisk, for callers that only need the path. */
export const createWorkDisk = (options: WorkDiskOptions) => Effect.map(makeWorkDisk(options), (made) => made.disk)
