import * as fs from "node:fs"
import * as path from "node:path"
import { SocketServer } from "@effect/platform"
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import { Effect, Layer } from "effect"
import { DaemonStartError } from "../domain/errors.js"
import { probeSocketPath, type SocketProbe } from "./spawn.js"

export type { SocketProbe } from "./spawn.js"

/** `probeSocketPath` (spawn.ts) as an effect: connects once, bounded by `timeoutMs`; slow counts as live. */
export const probeSocket = (socketPath: string, timeoutMs = 1000): Effect.Effect<SocketProbe> =>
  Effect.async<SocketProbe>((resume) => {
    const cancel = probeSocketPath(socketPath, timeoutMs, (result) => resume(Effect.succeed(result)))
    return Effect.sync(cancel)
  })

/** A group name from /etc/group, or a numeric gid. */
export const resolveGroup = (group: string): Effect.Effect<number, DaemonStartError> =>
  Effect.suspend(() => {
    if (/^\d+$/.test(group)) return Effect.succeed(Number(group))
    const lines = Effect.try({
      try: () => fs.readFileSync("/etc/group", "utf8").split("\n"),
      catch: (error) => new DaemonStartError({ reason: `cannot read /etc/group: ${String(error)}` })
    })
    return Effect.flatMap(lines, (entries) => {
      const entry = entries.map((line) => line.split(":")).find((fields) => fields[0] === group)
      return entry?.[2] !== undefined && /^\d+$/.test(entry[2])
        ? Effect.succeed(Number(entry[2]))
        : Effect.fail(new DaemonStartError({ reason: `unknown group "${group}"` }))
    })
  })

/** Makes the path free to listen on: refuses when a server answers there, removes a crash's leftover. */
export const clearStaleSocket = Effect.fn("clearStaleSocket")(function* (socketPath: string) {
  const info = yield* Effect.sync(() => fs.lstatSync(socketPath, { throwIfNoEntry: false }))
  if (info === undefined) return
  if (!info.isSocket()) {
    return yield* new DaemonStartError({ reason: `${socketPath} exists and is not a socket` })
  }
  const probe = yield* probeSocket(socketPath)
  if (probe === "live") {
    return yield* new DaemonStartError({
      reason: `another banger daemon is already listening on ${socketPath}`
    })
  }
  yield* Effect.try({
    try: () => fs.rmSync(socketPath, { force: true }),
    catch: (error) => new DaemonStartError({ reason: `cannot remove stale socket ${socketPath}: ${String(error)}` })
  })
  yield* Effect.logInfo(`removed stale socket ${socketPath} (nothing answered on it)`)
})

export interface ListenOptions {
  readonly path: string
  /** Group allowed to connect: the socket becomes 0660 owned by it, instead of 0600. */
  readonly group?: string | undefined
}

/**
 * A SocketServer on a Unix socket that only its owner (or `group`) can connect to. The umask makes
 * the socket 0600 from the moment it exists, not after a chmod; it is removed when the scope closes.
 */
export const listenUnixSocket = (options: ListenOptions) =>
  Layer.scoped(
    SocketServer.SocketServer,
    Effect.gen(function* () {
      const gid = options.group === undefined ? undefined : yield* resolveGroup(options.group)
      yield* Effect.try({
        try: () => fs.mkdirSync(path.dirname(options.path), { recursive: true }),
        catch: (error) =>
          new DaemonStartError({ reason: `cannot create ${path.dirname(options.path)}: ${String(error)}` })
      })
      yield* clearStaleSocket(options.path)
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(options.path, { force: true })))
      // With a group, the socket is bound under a temporary name, given its group and mode, and
      // only then renamed into place: nobody can find it before members of the group may use it.
      // The name is fixed (one daemon per state dir, under its lock), so a crash leaves none behind.
      const bindPath =
        gid === undefined ? options.path : path.join(path.dirname(options.path), `.${path.basename(options.path)}.new`)
      if (bindPath !== options.path) {
        fs.rmSync(bindPath, { force: true })
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(bindPath, { force: true })))
      }
      const server = yield* Effect.acquireUseRelease(
        Effect.sync(() => process.umask(0o177)),
        () => NodeSocketServer.make({ path: bindPath }),
        (previous) => Effect.sync(() => process.umask(previous))
      ).pipe(
        Effect.mapError(
          (error) =>
            new DaemonStartError({ reason: `cannot listen on ${options.path}: ${String(error.cause ?? error)}` })
        )
      )
      yield* Effect.try({
        try: () => {
          if (gid !== undefined) {
            fs.chownSync(bindPath, -1, gid)
            fs.chmodSync(bindPath, 0o660)
            fs.renameSync(bindPath, options.path)
          }
        },
        catch: (error) =>
          new DaemonStartError({
            reason: `cannot give group ${options.group} access to ${options.path}: ${String(error)}`
          })
      })
      return server
    })
  )
