import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { Clock, Duration, Effect } from "effect"
import { DaemonNotRunning, DaemonUnavailable } from "../domain/errors.js"
import { DAEMON_NODE_FLAGS } from "./node-flags.js"
import { probeSocket } from "./socket.js"

export const DAEMON_LOG_FILE = "daemon.log"

export interface EnsureDaemonOptions {
  readonly stateDir: string
  readonly socket: string
  /** False with `BANGER_NO_AUTOSTART=1`: fail instead of starting a daemon. */
  readonly autostart: boolean
  /**
   * The banger entry to start, before its arguments. Default: this process's own node and entry
   * file (`process.execPath`, `process.argv[1]`), so the daemon is the same build as the CLI, with
   * the daemon's V8 flags (node-flags.ts).
   */
  readonly command?: ReadonlyArray<string> | undefined
  /** How long a started daemon may take to answer. Default 15 s. */
  readonly startTimeout?: Duration.DurationInput | undefined
  readonly env?: NodeJS.ProcessEnv | undefined
}

const POLL_INTERVAL = "50 millis"
/** After the started process exited, how long another daemon (one that won a start race) may take to answer. */
const AFTER_EXIT_GRACE_MS = 2_000

const logTail = (file: string) => {
  try {
    const lines = fs.readFileSync(file, "utf8").trim().split("\n")
    return lines.slice(-3).join(" | ")
  } catch {
    return ""
  }
}

/**
 * Makes sure a daemon answers on `socket`, like tmux: when nothing does, starts one in the
 * background for `stateDir` (its output goes to `<state>/daemon.log`) and waits until it listens.
 * Every wait is bounded, so a dead socket never hangs the caller.
 */
export const ensureDaemon = Effect.fn("ensureDaemon")(function* (options: EnsureDaemonOptions) {
  if ((yield* probeSocket(options.socket)) === "live") return "running" as const
  if (!options.autostart) {
    return yield* new DaemonNotRunning({ socket: options.socket, reason: "start it with: banger daemon" })
  }
  const unavailable = (reason: string) => new DaemonUnavailable({ socket: options.socket, reason })
  const logFile = path.join(options.stateDir, DAEMON_LOG_FILE)
  const [executable, ...entry] = options.command ?? [process.execPath, ...DAEMON_NODE_FLAGS, process.argv[1]!]
  const args = [...entry, "--state-dir", options.stateDir, "daemon", "--socket", options.socket]
  const child = yield* Effect.try({
    try: () => {
      fs.mkdirSync(options.stateDir, { recursive: true })
      const log = fs.openSync(logFile, "a", 0o600)
      try {
        const started = spawn(executable!, args, {
          // Its own session, and no hold on the caller's working directory.
          detached: true,
          cwd: "/",
          stdio: ["ignore", log, log],
          env: options.env ?? process.env
        })
        started.unref()
        return started
      } finally {
        fs.closeSync(log)
      }
    },
    catch: (error) => unavailable(`cannot start a daemon: ${String(error)}`)
  })
  let exitedAt: number | undefined
  let exitCode: number | null = null
  child.once("exit", (code) => {
    exitedAt = Date.now()
    exitCode = code
  })
  child.once("error", () => {
    exitedAt = Date.now()
  })
  const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(options.startTimeout ?? "15 seconds")
  while (true) {
    if ((yield* probeSocket(options.socket)) === "live") {
      yield* Effect.logDebug(`started a daemon (pid ${child.pid}) on ${options.socket}`)
      return "started" as const
    }
    const now = yield* Clock.currentTimeMillis
    if (exitedAt !== undefined && Date.now() - exitedAt > AFTER_EXIT_GRACE_MS) {
      const tail = logTail(logFile)
      return yield* unavailable(
        `the daemon it started exited (code ${exitCode ?? "unknown"})${tail ? `: ${tail}` : ""} (log: ${logFile})`
      )
    }
    if (now > deadline) {
      return yield* unavailable(`the daemon it started did not listen in time (log: ${logFile})`)
    }
    yield* Effect.sleep(POLL_INTERVAL)
  }
})
