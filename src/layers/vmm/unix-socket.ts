import * as fs from "node:fs"
import * as net from "node:net"
import { Duration, Effect } from "effect"
import { VmmError } from "../../domain/errors.js"
import { isSameProcess, logTail } from "./process.js"

/** sun_path holds 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107

/** Fails unless `socketPath` fits a Unix socket address. */
export const checkSocketPath = (vmId: string, socketPath: string): Effect.Effect<void, VmmError> => {
  const length = Buffer.byteLength(socketPath)
  return length <= MAX_SOCKET_PATH_BYTES
    ? Effect.void
    : Effect.fail(
        new VmmError({
          vmId,
          reason: `socket path ${socketPath} is ${length} bytes, over the ${MAX_SOCKET_PATH_BYTES}-byte limit of a Unix socket address: use a shorter state dir`
        })
      )
}

/** Removes a socket file left by an earlier VMM of this VM (a new one cannot bind over it). */
export const removeSocket = (socketPath: string): Effect.Effect<void> =>
  Effect.sync(() => fs.rmSync(socketPath, { force: true }))

/**
 * Removes the socket file unless something still accepts connections on it: after a stop, the
 * VMM's socket is stale, but a VmProcess that names a socket a live VMM serves (a row with a
 * wrong start time) must not cut that VMM off from its control channel.
 */
export const removeStaleSocket = (socketPath: string): Effect.Effect<void> =>
  connectOnce(socketPath).pipe(
    Effect.timeout(Duration.seconds(1)),
    Effect.matchEffect({
      onSuccess: () => Effect.void,
      onFailure: () => removeSocket(socketPath)
    })
  )

const connectOnce = (socketPath: string) =>
  Effect.async<void, string>((resume) => {
    const conn = net.createConnection({ path: socketPath })
    conn.once("connect", () => {
      conn.destroy()
      resume(Effect.void)
    })
    conn.once("error", (error: NodeJS.ErrnoException) => resume(Effect.fail(error.code ?? error.message)))
    return Effect.sync(() => conn.destroy())
  })

/**
 * Waits until something accepts connections on `socketPath`; fails at once when the VMM process
 * exits first (with its last output), or after `timeoutMs`.
 */
export const waitForSocket = (options: {
  readonly vmId: string
  readonly socketPath: string
  readonly pid: number
  readonly startTime: string
  readonly timeoutMs: number
  readonly outputFile: string
}): Effect.Effect<void, VmmError> => {
  // Built when it happens: the VMM's last words are in its output file by then.
  const exited = () =>
    new VmmError({
      vmId: options.vmId,
      reason: `the VMM exited before its socket appeared: ${logTail(options.outputFile) || "no output"}`
    })
  // true once connected, false while nothing listens yet; fails when the VMM is gone.
  const attempt = Effect.suspend(() =>
    isSameProcess(options.pid, options.startTime)
      ? connectOnce(options.socketPath).pipe(
          Effect.as(true),
          Effect.orElseSucceed(() => false)
        )
      : Effect.fail(exited())
  )
  const poll: Effect.Effect<void, VmmError> = attempt.pipe(
    Effect.flatMap((connected) =>
      connected
        ? Effect.void
        : Effect.zipRight(
            Effect.sleep(Duration.millis(5)),
            Effect.suspend(() => poll)
          )
    )
  )
  return poll.pipe(
    Effect.timeoutFail({
      duration: Duration.millis(options.timeoutMs),
      onTimeout: () =>
        new VmmError({
          vmId: options.vmId,
          reason: `the VMM socket ${options.socketPath} did not appear within ${options.timeoutMs} ms`
        })
    })
  )
}
