import * as fs from "node:fs"
import { SqlClient, type SqlError } from "@effect/sql"
import * as Migrator from "@effect/sql/Migrator"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { StoreError } from "../../domain/errors.js"
import { OperationStatus } from "../../rpc/schemas.js"
import { StatePaths } from "../state/state-paths.js"
import { migrations } from "./migrations.js"
import { Store } from "./store.js"

/** Operations as the daemon records them: written at begin, at each stage and at the end. */
export interface OperationStoreShape {
  readonly save: (status: OperationStatus) => Effect.Effect<void, StoreError>
  readonly find: (id: string) => Effect.Effect<Option.Option<OperationStatus>, StoreError>
  /** Newest first. */
  readonly list: (limit: number) => Effect.Effect<ReadonlyArray<OperationStatus>, StoreError>
  readonly running: Effect.Effect<ReadonlyArray<OperationStatus>, StoreError>
  /** Drops finished operations that ended before `isoTime`; answers how many. */
  readonly pruneEndedBefore: (isoTime: string) => Effect.Effect<number, StoreError>
}

const StatusJson = Schema.parseJson(OperationStatus)
const encodeStatus = Schema.encode(StatusJson)
const decodeStatus = Schema.decodeUnknown(StatusJson)

const storeError = (error: SqlError.SqlError) => new StoreError({ reason: error.message })

const decodeRows = (rows: ReadonlyArray<{ readonly status: string }>) =>
  Effect.forEach(rows, (row) => decodeStatus(row.status)).pipe(
    Effect.mapError((error) => new StoreError({ reason: `unreadable operation record: ${error.message}` }))
  )

const makeOperationStore = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const save: OperationStoreShape["save"] = (status) =>
    encodeStatus(status).pipe(
      Effect.mapError((error) => new StoreError({ reason: `cannot encode operation ${status.id}: ${error.message}` })),
      Effect.flatMap((json) =>
        sql`INSERT INTO operations (id, kind, state, started_at, ended_at, status)
            VALUES (${status.id}, ${status.kind}, ${status.state}, ${status.startedAt}, ${status.endedAt}, ${json})
            ON CONFLICT (id) DO UPDATE SET state = excluded.state, ended_at = excluded.ended_at,
              status = excluded.status`.pipe(Effect.mapError(storeError))
      ),
      Effect.asVoid
    )
  return {
    save,
    find: (id) =>
      sql<{ status: string }>`SELECT status FROM operations WHERE id = ${id}`.pipe(
        Effect.mapError(storeError),
        Effect.flatMap(decodeRows),
        Effect.map((rows) => Option.fromNullable(rows[0]))
      ),
    list: (limit) =>
      sql<{ status: string }>`SELECT status FROM operations ORDER BY started_at DESC, id LIMIT ${limit}`.pipe(
        Effect.mapError(storeError),
        Effect.flatMap(decodeRows)
      ),
    running: sql<{ status: string }>`SELECT status FROM operations WHERE state = 'running'`.pipe(
      Effect.mapError(storeError),
      Effect.flatMap(decodeRows)
    ),
    pruneEndedBefore: (isoTime) =>
      sql<{
        id: string
      }>`DELETE FROM operations WHERE ended_at IS NOT NULL AND ended_at < ${isoTime} RETURNING id`.pipe(
        Effect.map((rows) => rows.length),
        Effect.mapError(storeError)
      )
  } satisfies OperationStoreShape
})

const runMigrations = Migrator.make({})({ loader: Migrator.fromRecord(migrations) })

const operationStoreOn = (filename: string) =>
  Layer.effect(OperationStore, Effect.zipRight(runMigrations, makeOperationStore)).pipe(
    Layer.provide(SqliteClient.layer({ filename })),
    Layer.mapError((error) => new StoreError({ reason: error.message }))
  )

/**
 * Its own connection to `banger.db` (the Store keeps its SQL client private); WAL lets both share
 * the file. Needs the Store first, so the schema is migrated before this connection opens.
 */
export class OperationStore extends Context.Tag("banger/OperationStore")<OperationStore, OperationStoreShape>() {
  static readonly layer = Layer.unwrapEffect(
    Effect.gen(function* () {
      yield* Store
      const paths = yield* StatePaths
      yield* Effect.sync(() => fs.mkdirSync(paths.root, { recursive: true }))
      return operationStoreOn(paths.database)
    })
  )

  static readonly layerMemory = Layer.suspend(() => operationStoreOn(":memory:"))
}
