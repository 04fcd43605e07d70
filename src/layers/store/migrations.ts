import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Schema history. The migrator only runs ids above the highest applied one: append new entries,
 * never insert below an existing id.
 */
export const migrations = {
  "0001_images_and_kernels": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE images (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      ref TEXT,
      manifest_digest TEXT,
      platform TEXT,
      managed INTEGER NOT NULL,
      rootfs TEXT NOT NULL,
      kernel TEXT NOT NULL,
      initrd TEXT,
      modules TEXT,
      size_bytes INTEGER NOT NULL,
      created_at TEXT NOT NULL
    )`
    yield* sql`CREATE TABLE kernels (
      name TEXT PRIMARY KEY,
      kernel TEXT NOT NULL,
      initrd TEXT,
      modules TEXT,
      created_at TEXT NOT NULL
    )`
  }),
  /** Daemon operations: the full status as JSON, plus the columns the pruner and listings query. */
  "0002_operations": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE operations (
      id TEXT PRIMARY KEY,
      kind TEXT NOT NULL,
      state TEXT NOT NULL,
      started_at TEXT NOT NULL,
      ended_at TEXT,
      status TEXT NOT NULL
    )`
    yield* sql`CREATE INDEX operations_state ON operations (state)`
    yield* sql`CREATE INDEX operations_ended_at ON operations (ended_at)`
  }),
  /**
   * Kernels pulled as OCI images remember where from, and what they are (`format` decides which
   * hypervisor can boot them); images remember the stored kernel they were paired with.
   */
  "0003_kernel_sources": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE kernels ADD COLUMN ref TEXT`
    yield* sql`ALTER TABLE kernels ADD COLUMN manifest_digest TEXT`
    yield* sql`ALTER TABLE kernels ADD COLUMN version TEXT`
    yield* sql`ALTER TABLE kernels ADD COLUMN format TEXT`
    yield* sql`ALTER TABLE images ADD COLUMN kernel_name TEXT`
  }),
  /** Pulled images remember how their OCI config says to run them (the built-in init uses it). */
  "0005_image_runtime": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE images ADD COLUMN runtime TEXT`
  }),
  /** VMs: the row is the daemon's memory of what it started (reconciled with live processes on start). */
  "0006_vms": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE vms (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      image TEXT NOT NULL,
      image_id TEXT NOT NULL,
      vmm TEXT NOT NULL,
      vmm_reason TEXT NOT NULL,
      kernel_format TEXT NOT NULL,
      init TEXT,
      accel TEXT NOT NULL,
      cpus INTEGER NOT NULL,
      memory_mib INTEGER NOT NULL,
      disk_bytes INTEGER NOT NULL,
      dir TEXT NOT NULL,
      state TEXT NOT NULL,
      pid INTEGER,
      pid_start_time TEXT,
      running_accel TEXT,
      accel_reason TEXT,
      control_socket TEXT,
      last_exit TEXT,
      created_at TEXT NOT NULL,
      started_at TEXT,
      stopped_at TEXT
    )`
    yield* sql`CREATE INDEX vms_image_id ON vms (image_id)`
  }),
  /**
   * Registered images stay where the user keeps them: their files' size and mtime as registered,
   * so that promote can refuse a source that changed since. Null for managed images.
   */
  "0007_unmanaged_images": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE images ADD COLUMN rootfs_size INTEGER`
    yield* sql`ALTER TABLE images ADD COLUMN rootfs_mtime_ms INTEGER`
    yield* sql`ALTER TABLE images ADD COLUMN kernel_size INTEGER`
    yield* sql`ALTER TABLE images ADD COLUMN kernel_mtime_ms INTEGER`
    yield* sql`ALTER TABLE images ADD COLUMN initrd_size INTEGER`
    yield* sql`ALTER TABLE images ADD COLUMN initrd_mtime_ms INTEGER`
  }),
  /**
   * VM networking: each VM's place on the network (JSON of VmNetwork; null for --no-network) and
   * the address leases. A lease is keyed by its /30's network address, so two VMs can never hold
   * the same one; it is taken before the VM row exists (a create needs it to configure the guest),
   * hence the VM id rather than a foreign key.
   */
  "0008_vm_network": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE vms ADD COLUMN network TEXT`
    yield* sql`CREATE TABLE vm_addresses (
      base INTEGER PRIMARY KEY,
      vm_id TEXT NOT NULL UNIQUE,
      allocated_at TEXT NOT NULL
    )`
  })
}
