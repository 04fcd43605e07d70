import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { Effect, Option, Schedule, Stream } from "effect"
import { FilesystemError } from "../../domain/errors.js"
import { findVm } from "./live-state.js"
import { CONSOLE_LOG } from "./vm-dir.js"

/** How much of the log one chunk carries, and how often a followed log is looked at again. */
const CHUNK_BYTES = 64 * 1024
const FOLLOW_POLL = "200 millis"

/**
 * The VM's console log (every boot, oldest first) as text chunks; with `follow`, then whatever it
 * prints next, until the caller stops listening.
 */
export const vmLogs = (name: string, options: { readonly follow: boolean }) =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      const vm = yield* findVm(name)
      const fs = yield* FileSystem.FileSystem
      const file = path.join(vm.dir, CONSOLE_LOG)
      const fsError = (error: { message: string }) => new FilesystemError({ path: file, reason: error.message })
      const exists = yield* fs.exists(file).pipe(Effect.mapError(fsError))
      if (!exists) return Stream.empty
      const handle = yield* fs.open(file, { flag: "r" }).pipe(Effect.mapError(fsError))
      const decoder = new TextDecoder()
      const next = handle
        .readAlloc(CHUNK_BYTES)
        .pipe(Effect.mapError(fsError), Effect.map(Option.map((bytes) => decoder.decode(bytes, { stream: true }))))
      // What is there now, up to its end; then, when following, what is appended afterwards.
      const untilEnd = Stream.repeatEffectOption(
        next.pipe(
          Effect.mapError(Option.some),
          Effect.flatMap(Option.match({ onNone: () => Effect.fail(Option.none()), onSome: Effect.succeed }))
        )
      )
      if (!options.follow) return untilEnd
      const appended = Stream.repeatEffectWithSchedule(next, Schedule.spaced(FOLLOW_POLL)).pipe(
        Stream.filterMap((chunk) => chunk)
      )
      return Stream.concat(untilEnd, appended)
    })
  )
