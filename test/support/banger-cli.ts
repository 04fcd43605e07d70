/**
 * Runs the real CLI (`./bin/banger`) as a child process, as a user would, and the daemon it talks
 * to. The CLI never auto-starts a daemon here: each test starts (and stops, by pid) its own.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { expect } from "vitest"
import { answers } from "./socket-answers.js"

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
  /** Working directory; default the checkout's root. */
  readonly cwd?: string
  /** For the daemon helpers: arguments after `daemon`. */
  readonly extraArgs?: ReadonlyArray<string>
  /**
   * Run inside this network namespace (`ip netns exec NS …`, see netns.ts): a daemon started so,
   * and any VM it boots, makes its taps and nftables table there, never in the host's.
   */
  readonly netns?: string
  /** Without CAP_NET_ADMIN (dropped from the bounding set), as an unprivileged daemon would be. */
  readonly withoutNetAdmin?: boolean
  /** Written to the command's stdin, which is then closed; without it stdin is /dev/null. */
  readonly stdin?: string
}

export interface RunningCli {
  readonly child: ChildProcess
  readonly result: Promise<CliResult>
  /** Collected so far. */
  readonly output: () => { stdout: string; stderr: string }
}

const setpriv = (user: { readonly uid: number; readonly gid: number }) => [
  `--reuid=${user.uid}`,
  `--regid=${user.gid}`,
  "--clear-groups"
]

const copies = new Map<number, string>()

/**
 * The `bin/banger` another user runs. A checkout the user cannot reach (CI may clone below a
 * 0700 home) is hard-linked (or copied) into a readable temp dir once, removed when tests exit.
 */
export const bangerBinFor = (user: { readonly uid: number; readonly gid: number }): string => {
  const known = copies.get(user.uid)
  if (known !== undefined) return known
  const probe = `const fs = require("node:fs"); fs.accessSync(${JSON.stringify(bangerBin)}, fs.constants.R_OK);
fs.readdirSync(${JSON.stringify(path.join(repoRoot, "node_modules"))})`
  if (spawnSync("setpriv", [...setpriv(user), process.execPath, "-e", probe]).status === 0) {
    copies.set(user.uid, bangerBin)
    return bangerBin
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "banger-checkout-"))
  fs.chmodSync(dir, 0o755)
  process.once("exit", () => fs.rmSync(dir, { recursive: true, force: true }))
  for (const part of ["bin", "dist", "node_modules", "package.json"]) {
    const from = path.join(repoRoot, part)
    const linked = spawnSync("cp", ["-al", from, dir])
    if (linked.status !== 0 && spawnSync("cp", ["-a", from, dir]).status !== 0) {
      throw new Error(`cannot copy ${from} for uid ${user.uid}`)
    }
  }
  const bin = path.join(dir, "bin", "banger")
  copies.set(user.uid, bin)
  return bin
}

export const startBanger = (args: ReadonlyArray<string>, options: CliOptions = {}): RunningCli => {
  const bin = options.asUser ? bangerBinFor(options.asUser) : bangerBin
  const privileges = [
    ...(options.asUser ? setpriv(options.asUser) : []),
    ...(options.withoutNetAdmin ? ["--bounding-set=-net_admin"] : [])
  ]
  // ip netns exec and setpriv both exec what follows: the child's pid stays the CLI's (or daemon's).
  const full = [
    ...(options.netns === undefined ? [] : ["ip", "netns", "exec", options.netns]),
    ...(privileges.length > 0 ? ["setpriv", ...privileges, process.execPath] : []),
    bin,
    ...args
  ]
  const [command, ...argv] = full as [string, ...Array<string>]
  const child = spawn(command, argv, {
    cwd: options.cwd ?? path.dirname(path.dirname(bin)),
    env: { ...process.env, BANGER_NO_AUTOSTART: "1", ...options.env },
    stdio: [options.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"]
  })
  if (options.stdin !== undefined) child.stdin!.end(options.stdin)
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

export interface RunningDaemon {
  readonly pid: number
  readonly socket: string
  /** SIGTERM, then wait for a clean exit. */
  readonly stop: () => Promise<CliResult>
  /** SIGKILL: a crash, as far as the state dir can tell. */
  readonly kill: () => Promise<CliResult>
  readonly output: () => { stdout: string; stderr: string }
}

/** `banger --state-dir STATE daemon`, ready once its socket accepts connections. */
export const startBangerDaemon = async (state: string, options: CliOptions = {}): Promise<RunningDaemon> => {
  const socket = path.join(state, "banger.sock")
  const running = startBanger(["--state-dir", state, "daemon", ...(options.extraArgs ?? [])], {
    timeoutMs: 3_600_000,
    ...options
  })
  let exited = false
  running.result.then(
    () => {
      exited = true
    },
    () => {
      exited = true
    }
  )
  const deadline = Date.now() + 30_000
  while (!(await answers(socket))) {
    if (exited || Date.now() > deadline) {
      running.child.kill("SIGKILL")
      throw new Error(`banger daemon did not start:\n${running.output().stderr}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return {
    pid: running.child.pid!,
    socket,
    stop: () => {
      running.child.kill("SIGTERM")
      return running.result
    },
    kill: () => {
      running.child.kill("SIGKILL")
      return running.result
    },
    output: running.output
  }
}

/** Runs `body` with a daemon serving `state`, and stops that daemon (by its pid) afterwards. */
export const withBangerDaemon = async <A>(
  state: string,
  body: (daemon: RunningDaemon) => Promise<A>,
  options: CliOptions = {}
): Promise<A> => {
  const daemon = await startBangerDaemon(state, options)
  let value: A
  try {
    value = await body(daemon)
  } catch (error) {
    await daemon.stop()
    throw error
  }
  // A daemon that cannot shut down cleanly is a failure of the test too.
  const result = await daemon.stop()
  if (result.code !== 0) throw new Error(`banger daemon exited ${result.code}:\n${result.stderr}`)
  return value
}

/** A failed command as users see it: exactly one `banger: …` line on stderr, nothing on stdout. */
/** A non-TTY progress line: a phase (`banger: image dev`), a stage (`banger: booting…`) or a layer. */
export const isProgressLine = (line: string) =>
  /^banger: (.*…|(kernel|image|vm) \S+|layer \d+\/\d+ .*|\S+( \d+\/\d+)?: .*, retrying \(\d+ of \d+\))$/.test(line)

/** The `banger: …` lines of stderr that are not progress: the errors. */
export const errorLines = (stderr: string) =>
  stderr.split("\n").filter((line) => line.startsWith("banger:") && !isProgressLine(line))

export const expectOneLineError = (result: CliResult, pattern: RegExp) => {
  expect(result.code).not.toBe(0)
  expect(result.stdout).toBe("")
  const lines = errorLines(result.stderr)
  expect(lines, result.stderr).toHaveLength(1)
  expect(lines[0]).toMatch(pattern)
}
