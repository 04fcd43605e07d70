import * as path from "node:path"
import { Effect, Exit } from "effect"
import { VmmError } from "../../../domain/errors.js"
import type { VmLaunchSpec, VmProcess } from "../../../domain/vmm.js"
import { explainExit, killAndWait, spawnDetached } from "../process.js"
import { inspectWith, stopLadder } from "../stop-ladder.js"
import { checkSocketPath, removeSocket, waitForSocket } from "../unix-socket.js"
import type { BackendShape } from "../vmm.js"
import { firecrackerApi, isRefusal } from "./api-client.js"

export const API_SOCKET_FILE = "firecracker.sock"

export interface FirecrackerOptions {
  /** The firecracker binary (`FIRECRACKER_BIN`, else `firecracker` on PATH). */
  readonly bin: string
  readonly socketTimeoutMs: number
}

/** How the VMM process is started: the one place a jailer would change (see `firecrackerCommand`). */
export interface FirecrackerCommand {
  readonly argv: ReadonlyArray<string>
  /** The API socket as this process (not a chroot) sees it. */
  readonly apiSocket: string
}

/**
 * `firecracker --api-sock <sock> --id <id>`. Running under the jailer (own uid/gid, chroot,
 * cgroups) would instead be `jailer --id <id> --exec-file <bin> --uid U --gid G --chroot-base-dir D
 * -- --api-sock /run/firecracker.socket`, with the socket at `<D>/firecracker/<id>/root/run/...` and
 * kernel and disks linked into the chroot: this function and the paths it returns are the seam.
 */
export const firecrackerCommand = (options: FirecrackerOptions, spec: VmLaunchSpec): FirecrackerCommand => {
  const apiSocket = path.join(spec.runDir, API_SOCKET_FILE)
  return { argv: [options.bin, "--api-sock", apiSocket, "--id", spec.vmId], apiSocket }
}

/** The pre-boot configuration, in Firecracker's order; InstanceStart last. */
export const bootRequests = (spec: VmLaunchSpec): ReadonlyArray<{ readonly path: string; readonly body: unknown }> => [
  { path: "/machine-config", body: { vcpu_count: spec.cpus, mem_size_mib: spec.memoryMib } },
  {
    path: "/boot-source",
    body: {
      kernel_image_path: spec.kernel,
      boot_args: spec.bootArgs,
      ...(spec.initrd === undefined ? {} : { initrd_path: spec.initrd })
    }
  },
  {
    path: "/drives/rootfs",
    body: { drive_id: "rootfs", path_on_host: spec.rootDisk, is_root_device: true, is_read_only: false }
  },
  // The guest's eth0 on the VM's tap (which exists already), before the start.
  ...(spec.network === undefined
    ? []
    : [
        {
          path: "/network-interfaces/eth0",
          body: { iface_id: "eth0", host_dev_name: spec.network.tap, guest_mac: spec.network.mac }
        }
      ]),
  { path: "/actions", body: { action_type: "InstanceStart" } }
]

export const makeFirecrackerBackend = (options: FirecrackerOptions): BackendShape => {
  const launch: BackendShape["launch"] = (spec) =>
    Effect.gen(function* () {
      const began = performance.now()
      if (spec.kernelFormat !== "elf")
        return yield* new VmmError({
          vmId: spec.vmId,
          reason: `${spec.kernel} is a bzImage; Firecracker boots only an uncompressed ELF vmlinux kernel (use --vmm qemu, or a vmlinux)`
        })
      const command = firecrackerCommand(options, spec)
      yield* checkSocketPath(spec.vmId, command.apiSocket)
      yield* removeSocket(command.apiSocket)
      const cleanup = (spawned: { pid: number; startTime: string }) =>
        killAndWait(spawned.pid, spawned.startTime).pipe(Effect.zipRight(removeSocket(command.apiSocket)))
      const spawned = yield* Effect.acquireRelease(
        spawnDetached(spec.vmId, command.argv, spec.runDir, spec.consoleLog),
        (spawned, exit) => (Exit.isFailure(exit) ? cleanup(spawned) : Effect.void)
      )
      const spawnedMs = performance.now() - began
      yield* Effect.gen(function* () {
        yield* waitForSocket({
          vmId: spec.vmId,
          socketPath: command.apiSocket,
          pid: spawned.pid,
          startTime: spawned.startTime,
          timeoutMs: options.socketTimeoutMs,
          outputFile: spec.consoleLog
        })
        const api = firecrackerApi(spec.vmId, command.apiSocket)
        for (const step of bootRequests(spec)) yield* api.put(step.path, step.body)
      }).pipe(
        explainExit(spec.vmId, spawned, spec.consoleLog, isRefusal),
        Effect.onError(() => cleanup(spawned)),
        Effect.withSpan("Vmm.firecracker.configure")
      )
      return {
        vmId: spec.vmId,
        backend: "firecracker",
        pid: spawned.pid,
        startTime: spawned.startTime,
        controlSocket: command.apiSocket,
        consoleLog: spec.consoleLog,
        accel: "kvm",
        accelReason: "Firecracker always runs guests under KVM",
        timings: { spawnedMs, startedMs: performance.now() - began }
      } satisfies VmProcess
    })

  const stop: BackendShape["stop"] = (proc, stopOptions) =>
    stopLadder(
      proc,
      stopOptions,
      firecrackerApi(proc.vmId, proc.controlSocket, 2000).put("/actions", { action_type: "SendCtrlAltDel" })
    )

  const inspect: BackendShape["inspect"] = (proc) =>
    inspectWith(
      proc,
      firecrackerApi(proc.vmId, proc.controlSocket, 2000)
        .get("/")
        .pipe(
          Effect.map((info) => {
            const state = (info as { state?: unknown }).state
            return typeof state === "string" ? state : JSON.stringify(info)
          })
        )
    )

  return { launch, stop, inspect }
}
