import * as fs from "node:fs"
import { SqlClient, type SqlError } from "@effect/sql"
import * as Migrator from "@effect/sql/Migrator"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Cause, Context, Effect, Layer, Option, Schema } from "effect"
import { ImageNameTaken, KernelNameTaken, StoreError } from "../../domain/errors.js"
import { type FileStamp, Image, ImageRuntime, Kernel, type SourceStamps } from "../../domain/image.js"
import { StatePaths } from "../state/state-paths.js"
import { migrations } from "./migrations.js"
import { type AddressRowsShape, makeAddressRows, makeVmRows, type VmRowsShape } from "./vm-rows.js"

export interface StoreShape {
  readonly images: {
    /** Fails with ImageNameTaken when the name is already recorded (the UNIQUE constraint decides races). */
    readonly insert: (image: Image) => Effect.Effect<void, ImageNameTaken | StoreError>
    readonly find: (name: string) => Effect.Effect<Option.Option<Image>, StoreError>
    readonly list: Effect.Effect<ReadonlyArray<Image>, StoreError>
    /** The row as it was when removed (so the caller acts on what was deleted, not on an older read). */
    readonly remove: (name: string) => Effect.Effect<Option.Option<Image>, StoreError>
    /**
     * Records that an unmanaged image's files now live in the store: its new paths, managed, no
     * source stamps. None when no unmanaged image has this id (deleted or promoted meanwhile).
     */
    readonly markManaged: (id: string, files: StoredFiles) => Effect.Effect<Option.Option<Image>, StoreError>
    /** Ids of the images that own a directory under `<state>/images/` (the managed ones). */
    readonly managedIds: Effect.Effect<ReadonlySet<string>, StoreError>
  }
  readonly kernels: {
    readonly insert: (kernel: Kernel) => Effect.Effect<void, KernelNameTaken | StoreError>
    readonly find: (name: string) => Effect.Effect<Option.Option<Kernel>, StoreError>
    readonly list: Effect.Effect<ReadonlyArray<Kernel>, StoreError>
    readonly remove: (name: string) => Effect.Effect<boolean, StoreError>
  }
  readonly vms: VmRowsShape
  /** VMs' address leases out of the network pool. */
  readonly addresses: AddressRowsShape
}

/** Where a managed image's files are. */
export interface StoredFiles {
  readonly rootfs: string
  readonly kernel: string
  readonly initrd: string | null
  readonly modules: string | null
}

interface ImageRow {
  readonly id: string
  readonly name: string
  readonly ref: string | null
  readonly manifest_digest: string | null
  readonly platform: string | null
  readonly managed: number
  readonly rootfs: string
  readonly kernel: string
  readonly initrd: string | null
  readonly modules: string | null
  readonly size_bytes: number
  readonly created_at: string
  readonly kernel_name: string | null
  readonly runtime: string | null
  readonly rootfs_size: number | null
  readonly rootfs_mtime_ms: number | null
  readonly kernel_size: number | null
  readonly kernel_mtime_ms: number | null
  readonly initrd_size: number | null
  readonly initrd_mtime_ms: number | null
}

interface KernelRow {
  readonly name: string
  readonly kernel: string
  readonly initrd: string | null
  readonly modules: string | null
  readonly created_at: string
  readonly ref: string | null
  readonly manifest_digest: string | null
  readonly version: string | null
  readonly format: string | null
}

const stampOf = (size: number | null, mtimeMs: number | null): FileStamp | null =>
  size === null || mtimeMs === null ? null : { size, mtimeMs }

const sourcesFromRow = (row: ImageRow): SourceStamps | null => {
  const rootfs = stampOf(row.rootfs_size, row.rootfs_mtime_ms)
  const kernel = stampOf(row.kernel_size, row.kernel_mtime_ms)
  if (rootfs === null || kernel === null) return null
  return { rootfs, kernel, initrd: stampOf(row.initrd_size, row.initrd_mtime_ms) }
}

const imageFromRow = (row: ImageRow) =>
  new Image({
    id: row.id,
    name: row.name,
    ref: row.ref,
    manifestDigest: row.manifest_digest,
    platform: row.platform,
    managed: row.managed === 1,
    rootfs: row.rootfs,
    kernel: row.kernel,
    initrd: row.initrd,
    modules: row.modules,
    sizeBytes: row.size_bytes,
    createdAt: row.created_at,
    kernelName: row.kernel_name,
    runtime: row.runtime === null ? ImageRuntime.empty : decodeRuntime(row.runtime),
    sources: sourcesFromRow(row)
  })

const kernelFromRow = (row: KernelRow) =>
  new Kernel({
    name: row.name,
    kernel: row.kernel,
    initrd: row.initrd,
    modules: row.modules,
    createdAt: row.created_at,
    ref: row.ref,
    manifestDigest: row.manifest_digest,
    version: row.version,
    format: row.format === "elf" || row.format === "bzImage" ? row.format : null
  })

const runtimeJson = Schema.parseJson(ImageRuntime)
const decodeRuntime = Schema.decodeSync(runtimeJson)
const encodeRuntime = Schema.encodeSync(runtimeJson)

const storeError = (error: SqlError.SqlError) => new StoreError({ reason: error.message })

const isUniqueViolation = (error: SqlError.SqlError) => String(error.cause).includes("UNIQUE constraint failed")

/** An INSERT whose UNIQUE violation means the name was taken first: the constraint decides races. */
const insertUnlessTaken =
  <E>(taken: () => E) =>
  <A>(statement: Effect.Effect<A, SqlError.SqlError>) =>
    statement.pipe(
      Effect.asVoid,
      Effect.mapError((error) => (isUniqueViolation(error) ? taken() : storeError(error)))
    )

const makeStore = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const images: StoreShape["images"] = {
    insert: (image) =>
      sql`INSERT INTO images ${sql.insert({
        id: image.id,
        name: image.name,
        ref: image.ref,
        manifest_digest: image.manifestDigest,
        platform: image.platform,
        managed: image.managed ? 1 : 0,
        rootfs: image.rootfs,
        kernel: image.kernel,
        initrd: image.initrd,
        modules: image.modules,
        size_bytes: image.sizeBytes,
        created_at: image.createdAt,
        kernel_name: image.kernelName,
        runtime: encodeRuntime(image.runtime),
        rootfs_size: image.sources?.rootfs.size ?? null,
        rootfs_mtime_ms: image.sources?.rootfs.mtimeMs ?? null,
        kernel_size: image.sources?.kernel.size ?? null,
        kernel_mtime_ms: image.sources?.kernel.mtimeMs ?? null,
        initrd_size: image.sources?.initrd?.size ?? null,
        initrd_mtime_ms: image.sources?.initrd?.mtimeMs ?? null
      })}`.pipe(
        insertUnlessTaken(
          () => new ImageNameTaken({ name: image.name, reason: "another image with this name was recorded first" })
        )
      ),
    find: (name) =>
      sql<ImageRow>`SELECT * FROM images WHERE name = ${name}`.pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), imageFromRow)),
        Effect.mapError(storeError)
      ),
    list: sql<ImageRow>`SELECT * FROM images ORDER BY name`.pipe(
      Effect.map((rows) => rows.map(imageFromRow)),
      Effect.mapError(storeError)
    ),
    remove: (name) =>
      sql<ImageRow>`DELETE FROM images WHERE name = ${name} RETURNING *`.pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), imageFromRow)),
        Effect.mapError(storeError)
      ),
    markManaged: (id, files) =>
      sql<ImageRow>`UPDATE images SET managed = 1, rootfs = ${files.rootfs}, kernel = ${files.kernel},
        initrd = ${files.initrd}, modules = ${files.modules}, rootfs_size = NULL, rootfs_mtime_ms = NULL,
        kernel_size = NULL, kernel_mtime_ms = NULL, initrd_size = NULL, initrd_mtime_ms = NULL
        WHERE id = ${id} AND managed = 0 RETURNING *`.pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), imageFromRow)),
        Effect.mapError(storeError)
      ),
    managedIds: sql<{ id: string }>`SELECT id FROM images WHERE managed = 1`.pipe(
      Effect.map((rows) => new Set(rows.map((row) => row.id))),
      Effect.mapError(storeError)
    )
  }
  const kernels: StoreShape["kernels"] = {
    insert: (kernel) =>
      sql`INSERT INTO kernels ${sql.insert({
        name: kernel.name,
        kernel: kernel.kernel,
        initrd: kernel.initrd,
        modules: kernel.modules,
        created_at: kernel.createdAt,
        ref: kernel.ref,
        manifest_digest: kernel.manifestDigest,
        version: kernel.version,
        format: kernel.format
      })}`.pipe(
        insertUnlessTaken(
          () => new KernelNameTaken({ name: kernel.name, reason: "another kernel with this name was registered first" })
        )
      ),
    find: (name) =>
      sql<KernelRow>`SELECT * FROM kernels WHERE name = ${name}`.pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), kernelFromRow)),
        Effect.mapError(storeError)
      ),
    list: sql<KernelRow>`SELECT * FROM kernels ORDER BY name`.pipe(
      Effect.map((rows) => rows.map(kernelFromRow)),
      Effect.mapError(storeError)
    ),
    remove: (name) =>
      sql<{ name: string }>`DELETE FROM kernels WHERE name = ${name} RETURNING name`.pipe(
        Effect.map((rows) => rows.length > 0),
        Effect.mapError(storeError)
      )
  }
  return { images, kernels, vms: yield* makeVmRows, addresses: yield* makeAddressRows } satisfies StoreShape
})

const runMigrations = Migrator.make({})({ loader: Migrator.fromRecord(migrations) })

/** What the database could not be opened for, from a defect (SQLite's own errors arrive as one). */
const openFailure = (filename: string, cause: Cause.Cause<unknown>) => {
  const error = Cause.squash(cause)
  const message = error instanceof Error ? error.message : String(error)
  const code = (error as { code?: unknown } | undefined)?.code
  if (code === "SQLITE_NOTADB" || code === "SQLITE_CORRUPT") {
    return new StoreError({
      reason: `${filename} is not a usable SQLite database (${message}): move it aside to start with an empty state, or restore it from a backup`
    })
  }
  return new StoreError({ reason: `cannot open ${filename}: ${message}` })
}

const storeOn = (filename: string) =>
  Layer.effect(Store, Effect.zipRight(runMigrations, makeStore)).pipe(
    Layer.provide(SqliteClient.layer({ filename })),
    Layer.mapError((error) => new StoreError({ reason: error.message })),
    Layer.catchAllCause((cause) => {
      if (Cause.isInterruptedOnly(cause)) return Layer.failCause(cause)
      const failure = Cause.failureOption(cause)
      return Layer.fail(Option.isSome(failure) ? failure.value : openFailure(filename, cause))
    })
  )

/** The state database: SQLite at `<state>/banger.db`, migrated on open. */
export class Store extends Context.Tag("banger/Store")<Store, StoreShape>() {
  static readonly layer = Layer.unwrapEffect(
    Effect.gen(function* () {
      const paths = yield* StatePaths
      yield* Effect.try({
        try: () => fs.mkdirSync(paths.root, { recursive: true }),
        catch: (error) => new StoreError({ reason: `cannot create state dir ${paths.root}: ${String(error)}` })
      })
      return storeOn(paths.database)
    })
  )

  /** A real SQLite database in memory, for tests of the logic above the store. */
  static readonly layerMemory = Layer.suspend(() => storeOn(":memory:"))
}
