import type { CommandExecutor } from "@effect/platform"
import { Effect } from "effect"
import { Ext4Error } from "../../domain/errors.js"
import { runToolText } from "./process.js"

/**
 * `e2fsck -fn`: a forced, read-only check. Exit 0 is the only clean result: 4 means problems were
 * found (and, with -n, left alone), 8 and up that e2fsck itself could not run.
 */
export const checkFilesystem = Effect.fn("ext4.fsck")(function* (
  image: string
): Effect.fn.Return<void, Ext4Error, CommandExecutor.CommandExecutor> {
  // A host /etc/e2fsck.conf could relax the check (broken_system_clock and the like).
  const result = yield* runToolText({ tool: "e2fsck", args: ["-fn", image], env: { E2FSCK_CONFIG: "/dev/null" } })
  if (result.exitCode !== 0) {
    return yield* new Ext4Error({
      tool: "e2fsck",
      reason: `${image} is not clean (exit ${result.exitCode})`,
      stderr: `${result.stdout}${result.stderr}`
    })
  }
})
