import { spawnSync } from "node:child_process"
import { Context, Effect, Layer, type Scope } from "effect"
import type { VmmError } from "../../domain/errors.js"
import type { StopOptions, StopOutcome, VmInspection, VmLaunchSpec, VmmBackend, VmProcess } from "../../domain/vmm.js"
import { StatePaths } from "../state/state-paths.js"
import { makeFirecrackerBackend } from "./firecracker/firecracker-vmm.js"
import { type KvmStatus, kvmStatus } from "./qemu/kvm-host.js"
import { makeQemuBackend } from "./qemu/qemu-vmm.js"
import { makeVmmFake, type VmmFake } from "./vmm-fake.js"

/** One hypervisor: what the `Vmm` service dispatches to by `spec.backend` / `proc.backend`. */
export interface BackendShape {
  readonly launch: (spec: VmLaunchSpec) => Effect.Effect<VmProcess, VmmError, Scope.Scope>
  readonly stop: (proc: VmProcess, options: StopOptions) => Effect.Effect<StopOutcome, VmmError>
  readonly inspect: (proc: VmProcess) => Effect.Effect<VmInspection>
}

export interface VmmShape extends BackendShape {
  /**
   * Starts the VMM detached (own session; it outlives the daemon) and returns once the guest has
   * started (Firecracker: InstanceStart answered 204; QEMU: QMP says running). Any failure kills
   * what it spawned and removes its socket; so does the caller's scope closing with a failure or
   * interruption later (a create that fails after boot rolls its VM back). A scope that closes
   * successfully leaves the VM running: the caller keeps the returned `VmProcess` in its VM row.
   */
  readonly launch: (spec: VmLaunchSpec) => Effect.Effect<VmProcess, VmmError, Scope.Scope>
  /** Polite request, `graceMs`, SIGTERM, SIGKILL; never signals a pid whose start time changed. */
  readonly stop: (proc: VmProcess, options: StopOptions) => Effect.Effect<StopOutcome, VmmError>
  /** Alive, the same process (pid + start time), and its API/QMP answering. */
  readonly inspect: (proc: VmProcess) => Effect.Effect<VmInspection>
  /** Whether `--accel auto` would use KVM here, and why (for `doctor`). */
  readonly kvmStatus: Effect.Effect<KvmStatus>
  /** Whether the firecracker binary this service would start runs (`--version`). */
  readonly firecrackerAvailable: Effect.Effect<boolean>
}

export interface VmmConfig {
  /** Holds host-wide memory such as "KVM guests do not run here". */
  readonly hostStateDir: string
  /** Default `$FIRECRACKER_BIN`, else `firecracker` on PATH. */
  readonly firecrackerBin?: string | undefined
  /** Default `$BANGER_QEMU_BIN`, else `qemu-system-x86_64` on PATH. */
  readonly qemuBin?: string | undefined
  /** Default 5 s. */
  readonly socketTimeoutMs?: number | undefined
  /** Default 10 s: a KVM guest's kernel prints within a second; a TCG one within a few. */
  readonly kvmSilenceMs?: number | undefined
  readonly kvmDevice?: string | undefined
  /** Replaces opening `kvmDevice` read-write (tests on hosts without one). */
  readonly kvmDeviceOpens?: ((device: string) => boolean) | undefined
}

export const makeVmm = (config: VmmConfig): VmmShape => {
  const kvmHost = {
    kvmDevice: config.kvmDevice ?? "/dev/kvm",
    hostStateDir: config.hostStateDir,
    deviceOpens: config.kvmDeviceOpens
  }
  const socketTimeoutMs = config.socketTimeoutMs ?? 5000
  const firecrackerBin = config.firecrackerBin ?? process.env.FIRECRACKER_BIN ?? "firecracker"
  const backends: Record<VmmBackend, BackendShape> = {
    firecracker: makeFirecrackerBackend({
      bin: firecrackerBin,
      socketTimeoutMs
    }),
    qemu: makeQemuBackend({
      bin: config.qemuBin ?? process.env.BANGER_QEMU_BIN ?? "qemu-system-x86_64",
      socketTimeoutMs,
      kvmSilenceMs: config.kvmSilenceMs ?? 10_000,
      kvmHost
    })
  }
  return {
    launch: (spec) => backends[spec.backend].launch(spec),
    stop: (proc, options) => backends[proc.backend].stop(proc, options),
    inspect: (proc) => backends[proc.backend].inspect(proc),
    kvmStatus: kvmStatus(kvmHost),
    firecrackerAvailable: Effect.sync(
      () => spawnSync(firecrackerBin, ["--version"], { stdio: "ignore", timeout: 5_000 }).status === 0
    )
  }
}

export class Vmm extends Context.Tag("banger/Vmm")<Vmm, VmmShape>() {
  static readonly layer = (config: VmmConfig) => Layer.succeed(Vmm, makeVmm(config))

  /** Host memory in the state dir's `host/`; binaries from the environment. */
  static readonly layerFromState: Layer.Layer<Vmm, never, StatePaths> = Layer.effect(
    Vmm,
    Effect.map(StatePaths, (paths) => makeVmm({ hostStateDir: paths.host }))
  )

  /** For pipeline unit tests: records launches and stops, runs nothing. Pass your own `fake` to read them. */
  static readonly layerTest = (fake: VmmFake = makeVmmFake()) => Layer.succeed(Vmm, fake.vmm)
}

export type { KvmStatus } from "./qemu/kvm-host.js"
export { makeVmmFake, type VmmFake } from "./vmm-fake.js"
