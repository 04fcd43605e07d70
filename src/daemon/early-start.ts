/**
 * Starting the daemon before the CLI has loaded. A cold command used to load the CLI (~0.3 s),
 * find no daemon, and only then start one, which loads the same bundle again before it listens
 * (~0.35 s). bin/banger calls `startDaemonEarly` first, from this small module, so that both load
 * at once; the CLI's auto-start (`ensureDaemon`) then claims that daemon and waits for it rather
 * than starting another.
 *
 * The launcher cannot run the CLI's parser without loading it, so it recognises only the plainest
 * command lines of the commands that connect first thing; anything else starts its daemon the
 * ordinary way. A daemon started here that the CLI never claims (the command failed to parse, say)
 * is stopped when the CLI exits, so a mistyped command leaves no daemon behind.
 */
import { type DaemonTarget, daemonTarget, probeSocketPath, type StartedDaemon, spawnDaemon } from "./spawn.js"

/** The commands whose handlers connect to the daemon before anything else (`withDaemon` in src/cli). */
export const DAEMON_COMMANDS: Readonly<Record<string, ReadonlyArray<string>>> = {
  image: ["pull", "list", "show", "delete", "register", "promote"],
  kernel: ["pull", "register", "list", "show", "delete"],
  op: ["list", "status", "watch", "cancel"],
  catalog: ["list"],
  vm: ["create", "start", "stop", "restart", "delete", "list", "show", "logs", "ssh", "attach"]
}

/** Every top-level command of the CLI, whether it uses the daemon or not. */
const TOP_LEVEL = [...Object.keys(DAEMON_COMMANDS), "daemon", "doctor"]

/**
 * Options that make the CLI do something else than the command, or that the launcher does not
 * interpret: the built-ins (@effect/cli matches option names case-insensitively) and a state dir
 * given after the subcommand, which the CLI's parser accepts too.
 */
const NOT_PLAIN = /^(-h|--help|--version|--wizard|--completions|--state-dir)(=|$)/i

/**
 * The `--state-dir` of a command line that connects to the daemon, if it has the form
 * `[--state-dir DIR | --state-dir=DIR] GROUP SUBCOMMAND ...` (GROUP SUBCOMMAND from
 * DAEMON_COMMANDS, none of NOT_PLAIN after them); `stateDir` is undefined when not given.
 * Anything else answers undefined: then the launcher starts nothing.
 */
export const plainDaemonCommand = (
  args: ReadonlyArray<string>
): { readonly stateDir: string | undefined } | undefined => {
  let rest = args
  let stateDir: string | undefined
  if (rest[0] === "--state-dir") {
    stateDir = rest[1]
    rest = rest.slice(2)
  } else if (rest[0]?.startsWith("--state-dir=")) {
    stateDir = rest[0].slice("--state-dir=".length)
    rest = rest.slice(1)
  }
  // The CLI reads these differently or rejects them: an empty value, an option, or a command name
  // (its parser splits the line at the first command name, leaving --state-dir without a value).
  if (stateDir !== undefined && (stateDir === "" || stateDir.startsWith("-") || TOP_LEVEL.includes(stateDir))) {
    return undefined
  }
  const [group, subcommand, ...tail] = rest
  if (group === undefined || subcommand === undefined) return undefined
  if (!Object.hasOwn(DAEMON_COMMANDS, group) || !DAEMON_COMMANDS[group]!.includes(subcommand)) return undefined
  if (tail.some((arg) => NOT_PLAIN.test(arg))) return undefined
  return { stateDir }
}

const HANDOFF = Symbol.for("banger.earlyDaemon")

interface Handoff {
  readonly daemon: StartedDaemon
  claimed: boolean
}

/**
 * The launcher and the CLI run in one process but do not share module instances (the CLI is a
 * bundle with its own copy of this file), so the started daemon is handed over on globalThis.
 */
const slot = globalThis as unknown as { [HANDOFF]?: Handoff }

/**
 * Starts the daemon for `args` now if the command will need one, none answers on its socket and
 * auto-start is on; never throws (a failure to start is left for the CLI's auto-start to meet and
 * report). `command` is the banger entry, as `ensureDaemon` would use it.
 */
export const startDaemonEarly = async (
  args: ReadonlyArray<string>,
  env: NodeJS.ProcessEnv,
  command: readonly [executable: string, ...entry: string[]]
): Promise<StartedDaemon | undefined> => {
  try {
    if (env.BANGER_NO_AUTOSTART === "1") return undefined
    const parsed = plainDaemonCommand(args)
    if (parsed === undefined) return undefined
    const target = daemonTarget(parsed.stateDir, env)
    // Short: the CLI waits on it. A connect that hangs (rare for a Unix socket) counts as live.
    const probe = await new Promise((resolve) => probeSocketPath(target.socket, 200, resolve))
    if (probe === "live") return undefined
    const daemon = spawnDaemon(target, command, env)
    const handoff: Handoff = { daemon, claimed: false }
    slot[HANDOFF] = handoff
    process.once("exit", () => {
      if (handoff.claimed || daemon.ended() !== undefined || daemon.child.pid === undefined) return
      try {
        process.kill(daemon.child.pid, "SIGTERM")
      } catch {
        // Gone already.
      }
    })
    return daemon
  } catch {
    return undefined
  }
}

/**
 * The daemon the launcher started for `target`, if it did; from now on this process relies on
 * it, so it is no longer stopped when the process exits.
 */
export const claimEarlyDaemon = (target: DaemonTarget): StartedDaemon | undefined => {
  const handoff = slot[HANDOFF]
  if (handoff === undefined) return undefined
  const started = handoff.daemon.target
  if (started.stateDir !== target.stateDir || started.socket !== target.socket) return undefined
  handoff.claimed = true
  return handoff.daemon
}
