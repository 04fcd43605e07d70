import { FileSystem } from "@effect/platform"
import { Duration, Effect, Option, Schedule } from "effect"
import { FilesystemError, VmRefused } from "../../domain/errors.js"

/** The line a guest prints on its console once booted (banger's init, or the unit banger adds). */
export const readyLine = (name: string) => `banger: ${name} ready`

/** How often the console log is read while waiting. */
const POLL = Duration.millis(100)
/** How much of the console's end a failure quotes. */
const TAIL_LINES = 8

export interface WaitReadyOptions {
  readonly name: string
  readonly consoleLog: string
  readonly timeout: Duration.DurationInput
  /** Where this boot's output starts in the log (earlier boots' lines do not count). */
  readonly fromByte?: number | undefined
  /** Whether the VMM still runs; checked between reads, so a guest that died fails at once. */
  readonly alive: Effect.Effect<boolean>
}

const tail = (text: string) => text.trimEnd().split("\n").slice(-TAIL_LINES).join(" | ")

/** How much of the log's end is read for `consoleTail`: a few lines' worth, whatever the log's size. */
const TAIL_BYTES = 4096

/** The console's last lines, one line of text for an error message ("" when the log cannot be read). */
export const consoleTail = (consoleLog: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const size = Number((yield* fs.stat(consoleLog)).size)
      const file = yield* fs.open(consoleLog, { flag: "r" })
      yield* file.seek(Math.max(0, size - TAIL_BYTES), "start")
      const chunk = yield* file.readAlloc(TAIL_BYTES)
      return Option.match(chunk, { onNone: () => "", onSome: (bytes) => tail(new TextDecoder().decode(bytes)) })
    })
  ).pipe(Effect.orElseSucceed(() => ""))

/**
 * Follows the console log until the ready line appears. Fails with the console's last lines when
 * the VMM exits first or the time runs out, so the user sees why the guest never came up.
 */
export const waitReady = Effect.fn("vm.waitReady")(function* (options: WaitReadyOptions) {
  const fs = yield* FileSystem.FileSystem
  const wanted = readyLine(options.name)
  const failed = (reason: string) => new VmRefused({ name: options.name, reason })
  return yield* Effect.scoped(
    Effect.gen(function* () {
      const file = yield* fs
        .open(options.consoleLog, { flag: "r" })
        .pipe(Effect.mapError((error) => new FilesystemError({ path: options.consoleLog, reason: error.message })))
      if (options.fromByte) yield* file.seek(options.fromByte, "start")
      const decoder = new TextDecoder()
      let seen = ""
      const readMore = Effect.gen(function* () {
        while (true) {
          const chunk = yield* file
            .readAlloc(64 * 1024)
            .pipe(Effect.mapError((error) => new FilesystemError({ path: options.consoleLog, reason: error.message })))
          if (Option.isNone(chunk)) return
          seen += decoder.decode(chunk.value, { stream: true })
        }
      })
      const found = () => seen.includes(wanted)
      const check = Effect.gen(function* () {
        yield* readMore
        if (found()) return true
        if (!(yield* options.alive)) {
          yield* readMore
          if (found()) return true
          return yield* failed(`the VMM exited before the guest was ready; console: ${tail(seen)}`)
        }
        return false
      })
      yield* check.pipe(
        Effect.repeat({ schedule: Schedule.spaced(POLL), until: (ready) => ready }),
        Effect.timeoutFail({
          duration: options.timeout,
          onTimeout: () =>
            failed(
              `the guest did not print "${wanted}" within ${Duration.format(Duration.decode(options.timeout))}; console: ${tail(seen)}`
            )
        })
      )
    })
  )
})
