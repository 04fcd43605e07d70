import { Command, type Options } from "@effect/cli"
import { Cause, Console, Effect, Either, Option } from "effect"
import { probeSocket } from "../daemon/socket.js"
import { daemonTarget } from "../daemon/spawn.js"
import type { DoctorCheck } from "../domain/doctor.js"
import type { DaemonObservation } from "../pipelines/doctor/doctor.js"
import { BangerClient } from "../rpc/client.js"
import { VERSION } from "../version.js"
import { ExitCode } from "./exit-code.js"
import { printJson } from "./output.js"
import { requestedCatalog, rootCommand } from "./root-command.js"

/** The daemon runs every check itself in about a second; past this it is stuck, and the CLI checks instead. */
const DAEMON_DOCTOR_TIMEOUT = "30 seconds"

/** `ok    name: detail`, and for a problem a `fix:` line under it. */
export const formatCheck = (check: DoctorCheck): string => {
  const line = `${check.status.padEnd(6)}${check.name}: ${check.detail}`
  return check.fix === undefined ? line : `${line}\n${" ".repeat(6)}fix: ${check.fix}`
}

const causeReason = (cause: Cause.Cause<unknown>) => {
  const error = Cause.squash(cause)
  return typeof error === "string"
    ? error
    : `doctor.run failed: ${error instanceof Error ? error.message : String(error)}`
}

/** Loaded only when needed: the app's layers are the daemon's code, which other commands start without. */
const runLocally = (stateDir: string, catalog: string | undefined, daemon: DaemonObservation) =>
  Effect.flatMap(
    Effect.promise(() => import("./doctor-local.js")),
    ({ runDoctorLocally }) => runDoctorLocally(stateDir, catalog, daemon)
  )

/**
 * The checks as the daemon sees the host (it is what runs VMs) when one answers; otherwise (or
 * when it fails to answer) in this process with the same checks. Never starts a daemon.
 */
export const doctorChecks = (options: {
  readonly stateDir: string
  readonly socket: string
  readonly catalog: string | undefined
}) =>
  Effect.gen(function* () {
    const probe = yield* probeSocket(options.socket)
    if (probe !== "live") {
      return yield* runLocally(options.stateDir, options.catalog, {
        _tag: "NotRunning",
        socket: options.socket,
        stale: probe === "stale"
      })
    }
    const viaDaemon = yield* Effect.flatMap(BangerClient, (client) =>
      client.doctor.run({ catalog: options.catalog, clientVersion: VERSION })
    ).pipe(
      Effect.timeoutFail({
        duration: DAEMON_DOCTOR_TIMEOUT,
        onTimeout: () => `it did not answer doctor.run within ${DAEMON_DOCTOR_TIMEOUT}`
      }),
      Effect.map(Either.right),
      // Whatever went wrong (a lost connection, a daemon too old to know doctor.run), the checks still run here.
      Effect.catchAllCause((cause) => Effect.succeed(Either.left(causeReason(cause)))),
      Effect.provide(BangerClient.layer({ socket: options.socket })),
      Effect.scoped
    )
    if (viaDaemon._tag === "Right") return viaDaemon.right
    return yield* runLocally(options.stateDir, options.catalog, {
      _tag: "Unusable",
      socket: options.socket,
      reason: viaDaemon.left
    })
  })

export const makeDoctorCommand = (json: Options.Options<boolean>) =>
  Command.make("doctor", { json }, (options) =>
    Effect.gen(function* () {
      const root = yield* rootCommand
      const { stateDir, socket } = daemonTarget(Option.getOrUndefined(root.stateDir))
      const checks = yield* doctorChecks({ stateDir, socket, catalog: requestedCatalog(root.catalog) })
      if (options.json) yield* printJson(checks)
      else yield* Console.log(checks.map(formatCheck).join("\n"))
      if (checks.some((check) => check.status === "fail")) return yield* new ExitCode({ code: 1 })
    })
  ).pipe(Command.withDescription("check that this host has what banger needs, and say how to fix what it lacks"))
