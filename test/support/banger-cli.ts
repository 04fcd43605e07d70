/** Runs the real CLI (`./bin/banger`) as a child process, as a user would. */
import { type ChildProcess, spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
export const bangerBin = path.join(repoRoot, "bin", "banger")

export interface CliResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

export interface CliOptions {
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Run as another user: `setpriv` to this uid/gid with no supplementary groups. */
  readonly asUser?: { readonly uid: number; readonly gid: number }
  readonly timeoutMs?: number
}

export interface RunningCli {
  readonly child: ChildProcess
  readonly result: Promise<CliResult>
  /** Collected so far. */
  readonly output: () => { stdout: string; stderr: string }
}

export const startBanger = (args: ReadonlyArray<string>, options: CliOptions = {}): RunningCli => {
  const command = options.asUser ? "setpriv" : bangerBin
  const argv = options.asUser
    ? [
        `--reuid=${options.asUser.uid}`,
        `--regid=${options.asUser.gid}`,
        "--clear-groups",
        process.execPath,
        bangerBin,
        ...args
      ]
    : [...args]
  const child = spawn(command, argv, {
    cwd: repoRoot,
    env: { ...process.env, BANGER_NO_AUTOSTART: "1", ...options.env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (chunk: Buffer) => {
    stdout += chunk.toString()
  })
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const timeoutMs = options.timeoutMs ?? 300_000
  const result = new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`banger ${args.join(" ")} timed out after ${timeoutMs} ms\n${stderr}`))
    }, timeoutMs)
    child.on("error", reject)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
  return { child, result, output: () => ({ stdout, stderr }) }
}

export const runBanger = (args: ReadonlyArray<string>, options: CliOptions = {}): Promise<CliResult> =>
  startBanger(args, options).result
