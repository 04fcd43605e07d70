import * as fs from "node:fs"
import * as path from "node:path"
import { Reactivity } from "@effect/experimental"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Effect } from "effect"
import { DaemonStartError } from "../domain/errors.js"

export const LOCK_FILE = "daemon.lock"

/**
 * One daemon per state dir: an exclusive SQLite lock on `<state>/daemon.lock`, held for the scope.
 * It is a kernel (fcntl) lock, so the kernel drops it when the process dies, even by kill -9: a
 * crash never leaves a stale lock behind, and two daemons starting at once cannot both win.
 */
export const acquireDaemonLock = Effect.fn("acquireDaemonLock")(function* (stateDir: string) {
  const file = path.join(stateDir, LOCK_FILE)
  yield* Effect.try({
    try: () => fs.mkdirSync(stateDir, { recursive: true }),
    catch: (error) => new DaemonStartError({ reason: `cannot create state dir ${stateDir}: ${String(error)}` })
  })
  const sql = yield* SqliteClient.make({ filename: file, disableWAL: true }).pipe(Effect.provide(Reactivity.layer))
  yield* Effect.gen(function* () {
    // Fail at once rather than wait for the holder (better-sqlite3 waits 5 s by default).
    yield* sql.unsafe("PRAGMA busy_timeout = 0")
    yield* sql.unsafe("PRAGMA locking_mode = EXCLUSIVE")
    yield* sql.unsafe("BEGIN EXCLUSIVE")
  }).pipe(
    Effect.mapError((error) =>
      String(error.cause).includes("SQLITE_BUSY") || String(error.cause).includes("database is locked")
        ? new DaemonStartError({ reason: `another banger daemon is already running for ${stateDir}` })
        : new DaemonStartError({ reason: `cannot lock ${file}: ${error.message}` })
    )
  )
  return file
})
