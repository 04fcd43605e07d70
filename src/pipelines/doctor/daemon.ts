import { Effect } from "effect"
import { HostProbe } from "../../layers/host/host-probe.js"
import { ok, warn } from "./result.js"

/** What whoever runs doctor knows about the daemon: the daemon itself, or a CLI that found none. */
export type DaemonObservation =
  | {
      readonly _tag: "Serving"
      readonly pid: number
      readonly version: string
      readonly socket: string
      /** The version of the CLI asking, when one does. */
      readonly clientVersion?: string | undefined
    }
  | { readonly _tag: "NotRunning"; readonly socket: string; readonly stale: boolean }
  | { readonly _tag: "Unusable"; readonly socket: string; readonly reason: string }

const octal = (mode: number) => `0${mode.toString(8).padStart(3, "0")}`

/** The daemon answers, runs this version, and its socket admits only its owner (or its --group). */
export const checkDaemon = (daemon: DaemonObservation) =>
  Effect.gen(function* () {
    switch (daemon._tag) {
      case "NotRunning":
        return warn(
          "daemon",
          `not running (it starts on first use)${daemon.stale ? `; the stale socket ${daemon.socket} is replaced then` : ""}`,
          "nothing to do; to start it now: banger daemon"
        )
      case "Unusable":
        return warn(
          "daemon",
          `cannot use the daemon at ${daemon.socket}: ${daemon.reason}`,
          "see daemon.log in the state dir; stop that daemon (kill its pid) and run any banger command to start a fresh one"
        )
      case "Serving": {
        const restart = `kill ${daemon.pid} (the next banger command starts a daemon of this version)`
        if (daemon.clientVersion !== undefined && daemon.clientVersion !== daemon.version) {
          return warn(
            "daemon",
            `pid ${daemon.pid} runs banger ${daemon.version}, this CLI is ${daemon.clientVersion}`,
            restart
          )
        }
        const socket = yield* (yield* HostProbe).stat(daemon.socket)
        if (socket === undefined || socket.kind !== "socket") {
          return warn("daemon", `pid ${daemon.pid} answers, but ${daemon.socket} is not its socket file`, restart)
        }
        if ((socket.mode & 0o007) !== 0) {
          return warn(
            "daemon",
            `${daemon.socket} is mode ${octal(socket.mode)}: every local user can drive banger`,
            `${restart}; banger makes its socket 0600 (0660 with --group)`
          )
        }
        return ok(
          "daemon",
          `pid ${daemon.pid}, version ${daemon.version}, socket ${daemon.socket} (mode ${octal(socket.mode)})`
        )
      }
    }
  })
