import { Duration, Effect, Schedule } from "effect"
import { SshUnavailable } from "../../domain/errors.js"
import { Ssh } from "../../layers/ssh/ssh.js"
import { consoleTail } from "./wait-ready.js"

/** How long one probe waits for the banner once connected; sshd sends it at once. */
const PROBE_MS = 2_000
const POLL = Duration.millis(250)

export interface WaitSshOptions {
  readonly name: string
  readonly address: string
  readonly port: number
  readonly timeout: Duration.DurationInput
  /** Whether the VMM still runs: a guest that died fails at once instead of at the timeout. */
  readonly alive: Effect.Effect<boolean>
  /** Quoted in the error: banger's init says there when sshd did not start. */
  readonly consoleLog: string
}

/**
 * After the ready line: the guest's sshd answers on its port with an `SSH-2.0` banner (a refused
 * or silent port means it has not started yet). Fails naming the address, what it last heard and
 * the console's last lines.
 */
export const waitSsh = Effect.fn("vm.waitSsh")(function* (options: WaitSshOptions) {
  const ssh = yield* Ssh
  const where = `${options.address}:${options.port}`
  const console = Effect.map(consoleTail(options.consoleLog), (text) => (text === "" ? "" : `; console: ${text}`))
  let last: string | undefined
  const probe = Effect.gen(function* () {
    last = yield* ssh.banner(options.address, options.port, PROBE_MS)
    if (last?.startsWith("SSH-2.0-")) return true
    if (!(yield* options.alive)) {
      return yield* new SshUnavailable({
        name: options.name,
        reason: `the VMM exited before sshd answered on ${where}${yield* console}`
      })
    }
    return false
  })
  const heard = () => (last === undefined ? "no answer" : `it said: ${JSON.stringify(last.slice(0, 80))}`)
  yield* probe.pipe(
    Effect.repeat({ schedule: Schedule.spaced(POLL), until: (ready) => ready }),
    Effect.timeout(options.timeout),
    Effect.catchTag("TimeoutException", () =>
      Effect.flatMap(
        console,
        (tail) =>
          new SshUnavailable({
            name: options.name,
            reason: `sshd did not answer on ${where} with an SSH-2.0 banner within ${Duration.format(Duration.decode(options.timeout))} (${heard()})${tail}`
          })
      )
    )
  )
})
