import * as path from "node:path"
import { Command, Options } from "@effect/cli"
import { Duration, Effect, Either, identity, Logger, LogLevel, Option } from "effect"
import { daemonTarget } from "../daemon/spawn.js"
import { DaemonStartError } from "../domain/errors.js"
import { parseCidr } from "../layers/network/address.js"
import { DEFAULT_WEB_ADDRESS, webConfig } from "../web/address.js"
import { requestedCatalog, rootCommand } from "./root-command.js"

const units: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `90s`, `10m`, `24h`, `7d`, `500ms`, or plain seconds. */
export const parseDuration = (input: string): Either.Either<Duration.Duration, string> => {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(input.trim())
  if (!match) return Either.left(`invalid duration "${input}" (use e.g. 90s, 10m, 24h, 7d)`)
  return Either.right(Duration.millis(Number(match[1]) * units[match[2] ?? "s"]!))
}

/**
 * The CLI logs warnings only (main.ts); a daemon's log is its record, so it logs from info up
 * unless the built-in `--log-level` (@effect/cli applies it around the command) was given.
 */
const levelGiven = () => process.argv.some((arg) => arg === "--log-level" || arg.startsWith("--log-level="))

export const makeDaemonCommand = () =>
  Command.make(
    "daemon",
    {
      socket: Options.text("socket").pipe(
        Options.withDescription("Unix socket to serve (default: $BANGER_SOCKET, else <state>/banger.sock)"),
        Options.optional
      ),
      group: Options.text("group").pipe(
        Options.withDescription("let this group use the socket (mode 0660; default owner only, 0600)"),
        Options.optional
      ),
      web: Options.text("web").pipe(
        Options.withDescription(
          `also serve the web UI at HOST:PORT (given bare: ${DEFAULT_WEB_ADDRESS}); log in with: banger ui`
        ),
        Options.optional
      ),
      webAllowRemote: Options.boolean("web-allow-remote").pipe(
        Options.withDescription(
          "let --web listen on a non-loopback address (anyone who can reach it may try to log in)"
        )
      ),
      subnet: Options.text("subnet").pipe(
        Options.withDescription(
          "VMs' address pool, one /30 per VM (default: the first of 172.30.0.0/16, 172.29.0.0/16, … no host route overlaps)"
        ),
        Options.optional
      ),
      operationTtl: Options.text("op-ttl").pipe(
        Options.withDescription("how long finished operations are kept (e.g. 30m, 24h, 7d)"),
        Options.withDefault("24h")
      ),
      idleTimeout: Options.text("idle-timeout").pipe(
        Options.withDescription(
          "a registry response that sends no data this long is dropped and retried (default 30s)"
        ),
        Options.optional
      ),
      stallBudget: Options.text("stall-budget").pipe(
        Options.withDescription(
          "most time one blob may spend waiting on silent connections, all retries together (default 2m)"
        ),
        Options.optional
      ),
      resolveTimeout: Options.text("resolve-timeout").pipe(
        Options.withDescription(
          "most time resolving a reference (manifests and config, all retries) may take (default 2m)"
        ),
        Options.optional
      )
    },
    (options) =>
      Effect.gen(function* () {
        const root = yield* rootCommand
        const target = daemonTarget(Option.getOrUndefined(root.stateDir))
        const stateDir = target.stateDir
        const socket = path.resolve(Option.getOrElse(options.socket, () => target.socket))
        const ttl = parseDuration(options.operationTtl)
        if (Either.isLeft(ttl)) return yield* new DaemonStartError({ reason: `--op-ttl: ${ttl.left}` })
        const transfer: Record<string, Duration.Duration | undefined> = {}
        for (const [key, flag] of [
          ["idleTimeout", "--idle-timeout"],
          ["stallBudget", "--stall-budget"],
          ["resolveTimeout", "--resolve-timeout"]
        ] as const) {
          const given = Option.getOrUndefined(options[key])
          if (given === undefined) continue
          const parsed = parseDuration(given)
          if (Either.isLeft(parsed) || Duration.toMillis(parsed.right) <= 0) {
            return yield* new DaemonStartError({
              reason: `${flag}: ${Either.isLeft(parsed) ? parsed.left : "must be more than zero"}`
            })
          }
          transfer[key] = parsed.right
        }
        const web = Option.map(options.web, (address) => webConfig(address, options.webAllowRemote))
        if (Option.isSome(web) && Either.isLeft(web.value))
          return yield* new DaemonStartError({ reason: `--web: ${web.value.left}` })
        if (Option.isNone(web) && options.webAllowRemote)
          return yield* new DaemonStartError({ reason: "--web-allow-remote needs --web ADDR" })
        const subnet = Option.isSome(options.subnet) ? parseCidr(options.subnet.value) : Either.right(undefined)
        if (Either.isLeft(subnet)) return yield* new DaemonStartError({ reason: `--subnet: ${subnet.left}` })
        // Loaded only here: the other commands, which talk to a daemon, start without the daemon's code.
        const { runDaemon, serveUntilSignal } = yield* Effect.promise(() => import("../daemon/run.js"))
        const daemon = runDaemon({
          catalog: requestedCatalog(root.catalog),
          stateDir,
          socket,
          group: Option.getOrUndefined(options.group),
          operationTtl: ttl.right,
          web: Option.getOrUndefined(Option.flatMap(web, Either.getRight)),
          subnet: subnet.right,
          transfer
        })
        yield* serveUntilSignal(daemon).pipe(levelGiven() ? identity : Logger.withMinimumLogLevel(LogLevel.Info))
      })
  ).pipe(
    Command.withDescription(
      "serve the banger API on a Unix socket; owns the state dir. logs (logfmt) go to stderr, from info up unless --log-level says otherwise"
    )
  )

/**
 * `--web` takes an optional address, which @effect/cli options cannot: a bare `--web` (last, or
 * followed by another option) is given the default address before parsing.
 */
export const defaultWebAddress = (argv: ReadonlyArray<string>): ReadonlyArray<string> =>
  argv.flatMap((arg, index) => {
    if (arg !== "--web") return [arg]
    const next = argv[index + 1]
    return next === undefined || next.startsWith("-") ? [`--web=${DEFAULT_WEB_ADDRESS}`] : [arg]
  })
