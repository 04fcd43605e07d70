import { SqlClient, type SqlError } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import { AddressPoolExhausted, StoreError, VmNameTaken } from "../../domain/errors.js"
import type { KernelFormat } from "../../domain/image.js"
import { VmNetwork } from "../../domain/network.js"
import { Vm, type VmState } from "../../domain/vm.js"
import type { Accel, AccelRequest, VmmBackend } from "../../domain/vmm.js"

export interface VmRowsShape {
  /** Fails with VmNameTaken when the name is recorded already (the UNIQUE constraint decides races). */
  readonly insert: (vm: Vm) => Effect.Effect<void, VmNameTaken | StoreError>
  /** Replaces the row with the same id. */
  readonly update: (vm: Vm) => Effect.Effect<void, StoreError>
  readonly find: (name: string) => Effect.Effect<Option.Option<Vm>, StoreError>
  readonly list: Effect.Effect<ReadonlyArray<Vm>, StoreError>
  /** The row and its address lease, in one transaction. */
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
  readonly network: string | null
}

const networkJson = Schema.parseJson(VmNetwork)
const decodeNetwork = Schema.decodeSync(networkJson)
const encodeNetwork = Schema.encodeSync(networkJson)

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
    stoppedAt: row.stopped_at,
    network: row.network === null ? null : decodeNetwork(row.network)
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
  stopped_at: vm.stoppedAt,
  network: vm.network === null ? null : encodeNetwork(vm.network)
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
      Effect.gen(function* () {
        const rows = yield* sql<{ id: string }>`DELETE FROM vms WHERE id = ${id} RETURNING id`
        yield* sql`DELETE FROM vm_addresses WHERE vm_id = ${id}`
        return rows.length > 0
      }).pipe(sql.withTransaction, Effect.mapError(storeError)),
    usingImage: (imageId) =>
      sql<{ name: string }>`SELECT name FROM vms WHERE image_id = ${imageId} ORDER BY name`.pipe(
        Effect.map((rows) => rows.map((row) => row.name)),
        Effect.mapError(storeError)
      )
  } satisfies VmRowsShape
})

/** A /30 out of the pool: its network address, as an integer, between `start` and `end`. */
export interface AddressRange {
  readonly start: number
  readonly end: number
  /** For messages: the pool as the user wrote it. */
  readonly label: string
}

export interface AddressRowsShape {
  /**
   * The lowest free /30 of the range, leased to `vmId`: one INSERT … SELECT, so the choice and the
   * claim are one statement, and the primary key would refuse a second holder anyway.
   */
  readonly allocate: (vmId: string, range: AddressRange) => Effect.Effect<number, AddressPoolExhausted | StoreError>
  readonly release: (vmId: string) => Effect.Effect<boolean, StoreError>
  /** Leases no VM row holds (a create the daemon died in), removed; their VM ids. */
  readonly releaseOrphans: Effect.Effect<ReadonlyArray<string>, StoreError>
  readonly list: Effect.Effect<ReadonlyArray<{ readonly base: number; readonly vmId: string }>, StoreError>
}

const SLOT = 4

export const makeAddressRows = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return {
    allocate: (vmId, range) =>
      Effect.gen(function* () {
        const now = new Date().toISOString()
        const rows = yield* sql<{ base: number }>`
          WITH free(base) AS (
            SELECT ${range.start} WHERE NOT EXISTS (SELECT 1 FROM vm_addresses WHERE base = ${range.start})
            UNION ALL
            SELECT taken.base + ${SLOT} FROM vm_addresses AS taken
            WHERE taken.base >= ${range.start} AND taken.base + ${SLOT} < ${range.end}
              AND NOT EXISTS (SELECT 1 FROM vm_addresses AS next WHERE next.base = taken.base + ${SLOT})
          )
          INSERT INTO vm_addresses (base, vm_id, allocated_at)
          SELECT base, ${vmId}, ${now} FROM free ORDER BY base LIMIT 1
          RETURNING base`.pipe(Effect.mapError(storeError))
        const base = rows[0]?.base
        if (base === undefined)
          return yield* new AddressPoolExhausted({
            pool: range.label,
            reason: "every /30 is held by a VM: delete one, or restart the daemon with a larger --subnet"
          })
        return base
      }),
    release: (vmId) =>
      sql<{ base: number }>`DELETE FROM vm_addresses WHERE vm_id = ${vmId} RETURNING base`.pipe(
        Effect.map((rows) => rows.length > 0),
        Effect.mapError(storeError)
      ),
    releaseOrphans: sql<{ vm_id: string }>`
      DELETE FROM vm_addresses WHERE vm_id NOT IN (SELECT id FROM vms) RETURNING vm_id`.pipe(
      Effect.map((rows) => rows.map((row) => row.vm_id)),
      Effect.mapError(storeError)
    ),
    list: sql<{ base: number; vm_id: string }>`SELECT base, vm_id FROM vm_addresses ORDER BY base`.pipe(
      Effect.map((rows) => rows.map((row) => ({ base: row.base, vmId: row.vm_id }))),
      Effect.mapError(storeError)
    )
  } satisfies AddressRowsShape
})
