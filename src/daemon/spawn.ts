/**
 * Where the daemon of a state dir listens and how one is started, in plain Node: bin/banger loads
 * this module (dist/daemon/spawn.js) on its own, before the CLI's bundle, to start a daemon early
 * (early-start.ts); the CLI's auto-start (autostart.ts) uses the same functions, so both start the
 * same daemon the same way. Nothing here may import effect or other packages: each import is time
 * the launcher spends before the daemon starts.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { DAEMON_MALLOC_ENV } from "./node-flags.js"

export const SOCKET_FILE = "banger.sock"
export const DAEMON_LOG_FILE = "daemon.log"

/** `$BANGER_STATE_DIR`, else `/var/lib/banger` for root, else `$XDG_DATA_HOME/banger` (`~/.local/share/banger`). */
export const defaultStateDir = (env: NodeJS.ProcessEnv = process.env): string => {
  if (env.BANGER_STATE_DIR) return env.BANGER_STATE_DIR
  if (process.getuid?.() === 0) return "/var/lib/banger"
  const dataHome = env.XDG_DATA_HOME || path.join(os.homedir(), ".local", "share")
  return path.join(dataHome, "banger")
}

/**
 * `$BANGER_SOCKET`, else `<state>/banger.sock` (state dir as for the CLI: `$BANGER_STATE_DIR` or the
 * default); absolute either way, resolved against the working directory: a daemon the CLI starts
 * runs in `/`, so a relative path would name another socket there.
 */
export const defaultSocketPath = (stateDir?: string, env: NodeJS.ProcessEnv = process.env): string =>
  env.BANGER_SOCKET
    ? path.resolve(env.BANGER_SOCKET)
    : path.join(path.resolve(stateDir ?? defaultStateDir(env)), SOCKET_FILE)

/** The daemon a CLI command talks to: its state dir (absolute) and socket. */
export interface DaemonTarget {
  readonly stateDir: string
  readonly socket: string
}

/** The target for the CLI's `--state-dir` (resolved against the working directory) and environment. */
export const daemonTarget = (
  stateDirOption: string | undefined,
  env: NodeJS.ProcessEnv = process.env
): DaemonTarget => {
  const stateDir = path.resolve(stateDirOption ?? defaultStateDir(env))
  return { stateDir, socket: defaultSocketPath(stateDir, env) }
}

/** What answers on a socket path: a server, a dead socket file (a crash's leftover), or nothing. */
export type SocketProbe = "live" | "stale" | "absent"

/**
 * Connects once and calls `done` with the answer (once), unless cancelled first; returns the
 * cancel function. A connect that neither succeeds nor fails within `timeoutMs` counts as live:
 * something holds the path, and replacing it could cut off a daemon that is only slow.
 */
export const probeSocketPath = (
  socketPath: string,
  timeoutMs: number,
  done: (result: SocketProbe) => void
): (() => void) => {
  const conn = net.createConnection({ path: socketPath })
  const cancel = () => {
    clearTimeout(timer)
    conn.destroy()
  }
  const finish = (result: SocketProbe) => {
    cancel()
    done(result)
  }
  const timer = setTimeout(() => finish("live"), timeoutMs)
  conn.once("connect", () => finish("live"))
  conn.once("error", (error: NodeJS.ErrnoException) => finish(error.code === "ENOENT" ? "absent" : "stale"))
  return cancel
}

/** A daemon process this process started, and how it ended, if it has. */
export interface StartedDaemon {
  readonly target: DaemonTarget
  readonly child: ChildProcess
  readonly logFile: string
  /** When it exited (or failed to start), by `Date.now()`, and its exit code; undefined while it runs. */
  readonly ended: () => { readonly at: number; readonly code: number | null } | undefined
}

/**
 * Starts `<command> --state-dir <state> daemon --socket <socket>` in the background, like tmux
 * starts its server: its own session, cwd `/` (no hold on the caller's working directory), output
 * appended to `<state>/daemon.log`, not keeping the caller alive. Throws when the state dir or the
 * log cannot be made or the process cannot be started. Whether it then serves is for the caller to
 * watch: a second daemon for the same state dir exits, once loaded, on the state dir's lock (lock.ts).
 */
export const spawnDaemon = (
  target: DaemonTarget,
  command: readonly [executable: string, ...entry: string[]],
  env: NodeJS.ProcessEnv
): StartedDaemon => {
  const [executable, ...entry] = command
  const logFile = path.join(target.stateDir, DAEMON_LOG_FILE)
  fs.mkdirSync(target.stateDir, { recursive: true })
  const log = fs.openSync(logFile, "a", 0o600)
  let child: ChildProcess
  try {
    child = spawn(executable, [...entry, "--state-dir", target.stateDir, "daemon", "--socket", target.socket], {
      detached: true,
      cwd: "/",
      stdio: ["ignore", log, log],
      env: { ...DAEMON_MALLOC_ENV, ...env }
    })
  } finally {
    fs.closeSync(log)
  }
  child.unref()
  // Listened to from the start: the caller may look only later, after the events were emitted.
  let ended: { at: number; code: number | null } | undefined
  child.once("exit", (code) => {
    ended ??= { at: Date.now(), code }
  })
  child.once("error", () => {
    ended ??= { at: Date.now(), code: null }
  })
  return { target, child, logFile, ended: () => ended }
}
