import { constants as fsConstants } from "node:fs"
import * as fsp from "node:fs/promises"
import { Command, type CommandExecutor } from "@effect/platform"
import { Context, Effect, Layer, Stream } from "effect"
import { FilesystemError } from "../../domain/errors.js"
import { collectBytes } from "../ext4/process.js"

/** Copies of disk images and other large, mostly sparse files. */
export interface DiskCopyShape {
  /**
   * `from` to `to` (which must not exist yet): a reflink where the filesystem can share blocks
   * (btrfs, XFS), else a sparse-aware copy that keeps holes as holes. Timestamps are kept; a
   * failed copy removes what it wrote.
   */
  readonly copy: (from: string, to: string) => Effect.Effect<void, FilesystemError>
  /** Whether files in `dir` can be reflinked (tries a tiny file; leaves nothing behind). */
  readonly reflinkSupported: (dir: string) => Effect.Effect<boolean, FilesystemError>
}

const run = (command: Command.Command) =>
  Effect.scoped(
    Effect.gen(function* () {
      const process = yield* Command.start(command.pipe(Command.env({ LC_ALL: "C" }), Command.stdin(Stream.empty)))
      const [stderr, exitCode] = yield* Effect.all([collectBytes(process.stderr), process.exitCode], {
        concurrency: "unbounded"
      })
      return { exitCode, stderr: stderr.toString("utf8").trim() }
    })
  )

const make = Effect.gen(function* () {
  const executor = yield* Effect.context<CommandExecutor.CommandExecutor>()
  /**
   * The reflink in this process (libuv's FICLONE), sparing a cp process where the filesystem
   * shares blocks; false where it cannot (libuv removes what it created then).
   */
  const clone = (from: string, to: string) =>
    Effect.promise(() =>
      fsp
        .copyFile(from, to, fsConstants.COPYFILE_FICLONE_FORCE | fsConstants.COPYFILE_EXCL)
        .then(() => fsp.stat(from))
        .then((info) => fsp.utimes(to, info.atimeMs / 1000, info.mtimeMs / 1000))
        .then(
          () => true,
          () => false
        )
    )

  const copy: DiskCopyShape["copy"] = (from, to) =>
    Effect.gen(function* () {
      if (yield* clone(from, to)) return
      // GNU cp does both jobs: FICLONE first, else copy_file_range/SEEK_DATA so holes stay holes.
      const result = yield* run(
        Command.make(
          "cp",
          "--reflink=auto",
          "--sparse=always",
          "--preserve=timestamps",
          "--no-target-directory",
          "--",
          from,
          to
        )
      )
      if (result.exitCode !== 0) {
        yield* run(Command.make("rm", "-f", "--", to)).pipe(Effect.ignore)
        return yield* new FilesystemError({ path: from, reason: `cannot copy to ${to}: ${result.stderr}` })
      }
    }).pipe(
      Effect.catchTag("SystemError", "BadArgument", (error) =>
        Effect.fail(new FilesystemError({ path: from, reason: `cannot run cp: ${error.message}` }))
      ),
      Effect.provide(executor),
      Effect.withSpan("DiskCopy.copy", { attributes: { from, to } })
    )
  const reflinkSupported: DiskCopyShape["reflinkSupported"] = (dir) =>
    Effect.gen(function* () {
      const probe = `${dir}/.reflink-probe-${process.pid}`
      const result = yield* run(
        Command.make(
          "sh",
          "-c",
          'printf x > "$1" && cp --reflink=always -- "$1" "$1.clone"; status=$?; rm -f -- "$1" "$1.clone"; exit $status',
          "probe",
          probe
        )
      )
      return result.exitCode === 0
    }).pipe(
      Effect.catchTag("SystemError", "BadArgument", (error) =>
        Effect.fail(new FilesystemError({ path: dir, reason: `cannot run cp: ${error.message}` }))
      ),
      Effect.provide(executor)
    )
  return { copy, reflinkSupported } satisfies DiskCopyShape
})

export class DiskCopy extends Context.Tag("banger/DiskCopy")<DiskCopy, DiskCopyShape>() {
  /** FICLONE in-process, else GNU cp; needs `NodeContext.layer` (CommandExecutor). */
  static readonly layer = Layer.effect(DiskCopy, make)
}
