import * as fs from "node:fs"
import { Clock, Duration, Effect } from "effect"
import { DaemonNotRunning, DaemonUnavailable } from "../domain/errors.js"
import { claimEarlyDaemon } from "./early-start.js"
import { DAEMON_NODE_FLAGS } from "./node-flags.js"
import { probeSocket } from "./socket.js"
import { spawnDaemon } from "./spawn.js"

export interface EnsureDaemonOptions {
  readonly stateDir: string
  readonly socket: string
  /** False with `BANGER_NO_AUTOSTART=1`: fail instead of starting a daemon. */
  readonly autostart: boolean
  /**
   * The banger entry to start, before its arguments. Default: this process's own node with the
   * daemon's V8 flags and its entry file (`process.execPath`, `DAEMON_NODE_FLAGS`,
   * `process.argv[1]`), so the daemon is the same build as the CLI.
   */
  readonly command?: ReadonlyArray<string> | undefined
  /** How long a started daemon may take to answer. Default 15 s. */
  readonly startTimeout?: Duration.DurationInput | undefined
  readonly env?: NodeJS.ProcessEnv | undefined
}

/** A started daemon listens ~0.35 s after its start; polling finely costs a failed connect per turn. */
const POLL_INTERVAL = "10 millis"
/** After the started process exited, how long another daemon (one that won a start race) may take to answer. */
const AFTER_EXIT_GRACE_MS = 2_000

const logTail = (file: string) => {
  try {
    // The daemon's own one-line errors begin with "banger: ", as this message will.
    const lines = fs.readFileSync(file, "utf8").trim().split("\n")
    return lines
      .slice(-3)
      .map((line) => line.replace(/^banger: /, ""))
      .join(" | ")
  } catch {
    return ""
  }
}

/**
 * Makes sure a daemon answers on `socket`, like tmux: when nothing does, starts one in the
 * background for `stateDir` (its output goes to `<state>/daemon.log`) and waits until it listens.
 * A daemon bin/banger already started for this state dir (early-start.ts) is waited for instead
 * of starting a second one. Every wait is bounded, so a dead socket never hangs the caller.
 */
export const ensureDaemon = Effect.fn("ensureDaemon")(function* (options: EnsureDaemonOptions) {
  const target = { stateDir: options.stateDir, socket: options.socket }
  // Claimed before the probe: whatever it answers, this process now relies on that daemon.
  const early = claimEarlyDaemon(target)
  if ((yield* probeSocket(options.socket)) === "live") return "running" as const
  if (!options.autostart) {
    return yield* new DaemonNotRunning({ socket: options.socket, reason: "start it with: banger daemon" })
  }
  const unavailable = (reason: string) => new DaemonUnavailable({ socket: options.socket, reason })
  const [executable, ...entry] = options.command ?? [process.execPath, ...DAEMON_NODE_FLAGS, process.argv[1]!]
  const daemon =
    early ??
    (yield* Effect.try({
      try: () => spawnDaemon(target, [executable!, ...entry], options.env ?? process.env),
      catch: (error) => unavailable(`cannot start a daemon: ${String(error)}`)
    }))
  const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(options.startTimeout ?? "15 seconds")
  while (true) {
    if ((yield* probeSocket(options.socket)) === "live") {
      yield* Effect.logDebug(`started a daemon (pid ${daemon.child.pid}) on ${options.socket}`)
      return "started" as const
    }
    const now = yield* Clock.currentTimeMillis
    const ended = daemon.ended()
    if (ended !== undefined && Date.now() - ended.at > AFTER_EXIT_GRACE_MS) {
      const tail = logTail(daemon.logFile)
      return yield* unavailable(
        `the daemon it started exited (code ${ended.code ?? "unknown"})${tail ? `: ${tail}` : ""} (log: ${daemon.logFile})`
      )
    }
    if (now > deadline) {
      return yield* unavailable(`the daemon it started did not listen in time (log: ${daemon.logFile})`)
    }
    yield* Effect.sleep(POLL_INTERVAL)
  }
})
