/** QEMU Machine Protocol over its Unix socket: greeting, `qmp_capabilities`, then one command. */
import * as net from "node:net"
import { Duration, Effect } from "effect"
import { VmmError } from "../../../domain/errors.js"

type QmpMessage = { readonly return?: unknown; readonly error?: { desc?: string }; readonly event?: string }

/**
 * Connects, negotiates capabilities, runs `command` and returns its `return` value. A QMP error
 * reply fails with its `desc`. `quit` and `system_powerdown` may see the connection close right
 * after (or instead of) the reply: `closeIsSuccess` takes that as done.
 */
export const qmpExecute = (
  vmId: string,
  socketPath: string,
  command: string,
  options: {
    readonly timeoutMs?: number
    readonly closeIsSuccess?: boolean
    /** The command's `arguments` object, when it takes any. */
    readonly arguments?: Record<string, unknown>
  } = {}
): Effect.Effect<unknown, VmmError> =>
  Effect.async<unknown, string>((resume) => {
    const conn = net.createConnection({ path: socketPath })
    let buffered = ""
    // 0: waiting for the greeting, 1: for the capabilities reply, 2: for the command's reply.
    let stage = 0
    let settled = false
    const finish = (result: Effect.Effect<unknown, string>) => {
      if (settled) return
      settled = true
      conn.destroy()
      resume(result)
    }
    const send = (execute: string, args?: Record<string, unknown>) =>
      conn.write(`${JSON.stringify(args === undefined ? { execute } : { execute, arguments: args })}\n`)
    conn.setEncoding("utf8")
    conn.on("data", (chunk: string) => {
      buffered += chunk
      let newline = buffered.indexOf("\n")
      while (newline >= 0 && !settled) {
        const line = buffered.slice(0, newline).trim()
        buffered = buffered.slice(newline + 1)
        newline = buffered.indexOf("\n")
        if (line === "") continue
        let message: QmpMessage
        try {
          message = JSON.parse(line) as QmpMessage
        } catch {
          finish(Effect.fail(`not QMP: ${line.slice(0, 200)}`))
          return
        }
        // Events (SHUTDOWN, POWERDOWN, ...) arrive between replies; only replies move us on.
        if (message.event !== undefined) continue
        if (stage === 0) {
          stage = 1
          send("qmp_capabilities")
        } else if (message.error !== undefined) {
          finish(Effect.fail(message.error.desc ?? JSON.stringify(message.error)))
        } else if (stage === 1) {
          stage = 2
          send(command, options.arguments)
        } else {
          finish(Effect.succeed(message.return))
        }
      }
    })
    conn.on("error", (error) => finish(Effect.fail(error.message)))
    conn.on("close", () =>
      stage === 2 && options.closeIsSuccess ? finish(Effect.void) : finish(Effect.fail("QMP connection closed"))
    )
    return Effect.sync(() => conn.destroy())
  }).pipe(
    Effect.timeoutFail({
      duration: Duration.millis(options.timeoutMs ?? 5000),
      onTimeout: () => `no answer within ${options.timeoutMs ?? 5000} ms`
    }),
    Effect.mapError((reason) => new VmmError({ vmId, reason: `QMP ${command}: ${reason}` }))
  )
