import { SqlClient, type SqlError } from "@effect/sql"
import { Effect, Option } from "effect"
import { StoreError, VmNameTaken } from "../../domain/errors.js"
import type { KernelFormat } from "../../domain/image.js"
import { Vm, type VmState } from "../../domain/vm.js"
import type { Accel, AccelRequest, VmmBackend } from "../../domain/vmm.js"

export interface VmRowsShape {
  /** Fails with VmNameTaken when the name is recorded already (the UNIQUE constraint decides races). */
  readonly insert: (vm: Vm) => Effect.Effect<void, VmNameTaken | StoreError>
  /** Replaces the row with the same id. */
  readonly update: (vm: Vm) => Effect.Effect<void, StoreError>
  readonly find: (name: string) => Effect.Effect<Option.Option<Vm>, StoreError>
  readonly list: Effect.Effect<ReadonlyArray<Vm>, StoreError>
  readonly remove: (id: string) => Effect.Effect<boolean, StoreError>
  /** Names of the VMs created from the image with this id. */
  readonly usingImage: (imageId: string) => Effect.Effect<ReadonlyArray<string>, StoreError>
}

interface VmRow {
  readonly id: string
  readonly name: string
  readonly image: string
  readonly image_id: string
  readonly vmm: VmmBackend
  readonly vmm_reason: string
  readonly kernel_format: KernelFormat
  readonly init: string | null
  readonly accel: AccelRequest
  readonly cpus: number
  readonly memory_mib: number
  readonly disk_bytes: number
  readonly dir: string
  readonly state: VmState
  readonly pid: number | null
  readonly pid_start_time: string | null
  readonly running_accel: Accel | null
  readonly accel_reason: string | null
  readonly control_socket: string | null
  readonly last_exit: string | null
  readonly created_at: string
  readonly started_at: string | null
  readonly stopped_at: string | null
}

const fromRow = (row: VmRow) =>
  new Vm({
    id: row.id,
    name: row.name,
    image: row.image,
    imageId: row.image_id,
    vmm: row.vmm,
    vmmReason: row.vmm_reason,
    kernelFormat: row.kernel_format,
    init: row.init,
    accel: row.accel,
    cpus: row.cpus,
    memoryMib: row.memory_mib,
    diskBytes: row.disk_bytes,
    dir: row.dir,
    state: row.state,
    pid: row.pid,
    pidStartTime: row.pid_start_time,
    runningAccel: row.running_accel,
    accelReason: row.accel_reason,
    controlSocket: row.control_socket,
    lastExit: row.last_exit,
    createdAt: row.created_at,
    startedAt: row.started_at,
    stoppedAt: row.stopped_at
  })

const toRow = (vm: Vm): VmRow => ({
  id: vm.id,
  name: vm.name,
  image: vm.image,
  image_id: vm.imageId,
  vmm: vm.vmm,
  vmm_reason: vm.vmmReason,
  kernel_format: vm.kernelFormat,
  init: vm.init,
  accel: vm.accel,
  cpus: vm.cpus,
  memory_mib: vm.memoryMib,
  disk_bytes: vm.diskBytes,
  dir: vm.dir,
  state: vm.state,
  pid: vm.pid,
  pid_start_time: vm.pidStartTime,
  running_accel: vm.runningAccel,
  accel_reason: vm.accelReason,
  control_socket: vm.controlSocket,
  last_exit: vm.lastExit,
  created_at: vm.createdAt,
  started_at: vm.startedAt,
  stopped_at: vm.stoppedAt
})

const storeError = (error: SqlError.SqlError) => new StoreError({ reason: error.message })

/** The `vms` table, on the Store's connection (so image deletes can check VMs in one place). */
export const makeVmRows = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return {
    insert: (vm) =>
      sql`INSERT INTO vms ${sql.insert({ ...toRow(vm) })}`.pipe(
        Effect.asVoid,
        Effect.mapError((error) =>
          String(error.cause).includes("UNIQUE constraint failed")
            ? new VmNameTaken({ name: vm.name, reason: "another VM with this name was recorded first" })
            : storeError(error)
        )
      ),
    update: (vm) => {
      const { id, ...fields } = toRow(vm)
      return sql`UPDATE vms SET ${sql.update(fields)} WHERE id = ${id}`.pipe(Effect.asVoid, Effect.mapError(storeError))
    },
    find: (name) =>
      sql<VmRow>`SELECT * FROM vms WHERE name = ${name}`.pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), fromRow)),
        Effect.mapError(storeError)
      ),
    list: sql<VmRow>`SELECT * FROM vms ORDER BY name`.pipe(
      Effect.map((rows) => rows.map(fromRow)),
      Effect.mapError(storeError)
    ),
    remove: (id) =>
      sql<{ id: string }>`DELETE FROM vms WHERE id = ${id} RETURNING id`.pipe(
        Effect.map((rows) => rows.length > 0),
        Effect.mapError(storeError)
      ),
    usingImage: (imageId) =>
      sql<{ name: string }>`SELECT name FROM vms WHERE image_id = ${imageId} ORDER BY name`.pipe(
        Effect.map((rows) => rows.map((row) => row.name)),
        Effect.mapError(storeError)
      )
  } satisfies VmRowsShape
})
