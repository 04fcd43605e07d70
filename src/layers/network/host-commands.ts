/** The programs the network layer drives (`ip`, `nft`), run to completion with their output. */
import { execFile } from "node:child_process"
import { Effect } from "effect"
import { NetworkError } from "../../domain/errors.js"

export interface CommandOutput {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs `file args`; a program that cannot start is a NetworkError, a non-zero exit is returned. */
export const runCommand = (file: string, args: ReadonlyArray<string>) =>
  Effect.async<CommandOutput, NetworkError>((resume) => {
    const child = execFile(
      file,
      [...args],
      { env: { ...process.env, LC_ALL: "C" }, timeout: 30_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : undefined
        if (code === undefined) {
          resume(Effect.fail(new NetworkError({ reason: `cannot run ${file}: ${error?.message ?? "unknown error"}` })))
          return
        }
        resume(Effect.succeed({ code, stdout, stderr }))
      }
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** Runs `file args` and fails with its own words when it exits non-zero. */
export const runChecked = (file: string, args: ReadonlyArray<string>) =>
  Effect.flatMap(runCommand(file, args), (output) =>
    output.code === 0
      ? Effect.succeed(output.stdout)
      : Effect.fail(
          new NetworkError({
            reason: `${file} ${args.join(" ")} failed: ${output.stderr.trim() || `exit code ${output.code}`}`
          })
        )
  )
