/**
 * The Firecracker backend against the API test double (test/support/firecracker-double), or against
 * the real binary when FIRECRACKER_BIN names one (then FIRECRACKER_TEST_KERNEL must name a vmlinux
 * and /dev/kvm must run guests): the exact request sequence, every 400 fault surfaced verbatim,
 * socket and process failures, the stop ladder, and nothing left behind.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Fiber } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { VmmError } from "../../src/domain/errors.js"
import type { VmLaunchSpec, VmProcess } from "../../src/domain/vmm.js"
import { firecrackerApi } from "../../src/layers/vmm/firecracker/api-client.js"
import { API_SOCKET_FILE } from "../../src/layers/vmm/firecracker/firecracker-vmm.js"
import { isSameProcess } from "../../src/layers/vmm/process.js"
import { Vmm, type VmmConfig } from "../../src/layers/vmm/vmm.js"
import {
  FIRECRACKER_DOUBLE,
  isRunning,
  loggedRequests,
  makeDisk,
  makeSpec,
  processesMentioning,
  runScoped
} from "../support/vmm.js"

const realBinary = process.env.FIRECRACKER_BIN
const firecrackerBin = realBinary ?? FIRECRACKER_DOUBLE
const kernel = realBinary ? process.env.FIRECRACKER_TEST_KERNEL : "/bin/true"

let root: string
let hostState: string

const run = <A, E>(effect: Effect.Effect<A, E, Vmm>, config: Partial<VmmConfig> = {}) =>
  Effect.runPromise(effect.pipe(Effect.provide(Vmm.layer({ hostStateDir: hostState, firecrackerBin, ...config }))))

const launch = (spec: VmLaunchSpec, config: Partial<VmmConfig> = {}) =>
  run(runScoped(Effect.flatMap(Vmm, (vmm) => vmm.launch(spec))), config)

const launchFailure = (spec: VmLaunchSpec, config: Partial<VmmConfig> = {}) =>
  run(Effect.flip(runScoped(Effect.flatMap(Vmm, (vmm) => vmm.launch(spec)))), config) as Promise<VmmError>

const stop = (proc: VmProcess, options: { graceMs: number; force?: boolean }) =>
  run(Effect.flatMap(Vmm, (vmm) => vmm.stop(proc, options)))

const inspect = (proc: VmProcess) => run(Effect.flatMap(Vmm, (vmm) => vmm.inspect(proc)))

/**
 * A spec with a disk and the test kernel. For a real kernel, the command line keeps the guest alive
 * and responsive without any init: it waits for a root device that never comes (rootwait), and a
 * Ctrl-Alt-Del then reboots it at once (the kernel's default before an init takes the key over),
 * which ends Firecracker.
 */
const vmSpec = (name: string, overrides: Partial<VmLaunchSpec> = {}) => {
  const spec = makeSpec(root, name, {
    kernel: kernel!,
    bootArgs: "console=ttyS0 reboot=k panic=1 root=/dev/vdz rootwait",
    ...overrides
  })
  if (!overrides.rootDisk) makeDisk(spec.rootDisk)
  return spec
}

/** Nothing of this VM survives: no process naming its run dir, no API socket. */
const expectNothingLeft = (spec: VmLaunchSpec) => {
  expect(processesMentioning(spec.runDir)).toEqual([])
  expect(fs.existsSync(path.join(spec.runDir, API_SOCKET_FILE))).toBe(false)
}

beforeAll(() => {
  if (realBinary && !kernel) throw new Error("FIRECRACKER_BIN is set: FIRECRACKER_TEST_KERNEL must name a vmlinux")
  // Short: socket paths must stay under 108 bytes.
  root = fs.mkdtempSync(path.join(os.tmpdir(), "bvf-"))
  hostState = path.join(root, "host")
})
afterAll(() => {
  for (const pid of processesMentioning(root)) process.kill(pid, "SIGKILL")
  fs.rmSync(root, { recursive: true, force: true })
})

describe("Firecracker backend", () => {
  it("configures in Firecracker's order, starts the guest, answers inspect, and stops cleanly on Ctrl-Alt-Del", async () => {
    // No such tap exists: the double accepts it, as a Firecracker with CAP_NET_ADMIN would create it.
    const network = { tap: "bgf1ec000000000", mac: "02:fc:00:00:00:01" }
    const spec = vmSpec("happy", { cpus: 2, memoryMib: 256, initrd: "/bin/true", network })
    const proc = await launch(spec)
    expect(proc).toMatchObject({ vmId: "happy", backend: "firecracker", accel: "kvm" })
    expect(isSameProcess(proc.pid, proc.startTime)).toBe(true)
    expect(proc.controlSocket).toBe(path.join(spec.runDir, API_SOCKET_FILE))
    console.log(
      `firecracker (${realBinary ? "real" : "double"}): spawned after ${proc.timings.spawnedMs.toFixed(1)} ms, guest started after ${proc.timings.startedMs.toFixed(1)} ms`
    )

    expect(loggedRequests(spec.consoleLog)).toEqual([
      { method: "PUT", path: "/machine-config", body: { vcpu_count: 2, mem_size_mib: 256 } },
      {
        method: "PUT",
        path: "/boot-source",
        body: { kernel_image_path: spec.kernel, boot_args: spec.bootArgs, initrd_path: "/bin/true" }
      },
      {
        method: "PUT",
        path: "/drives/rootfs",
        body: { drive_id: "rootfs", path_on_host: spec.rootDisk, is_root_device: true, is_read_only: false }
      },
      {
        method: "PUT",
        path: "/network-interfaces/eth0",
        body: { iface_id: "eth0", host_dev_name: network.tap, guest_mac: network.mac }
      },
      { method: "PUT", path: "/actions", body: { action_type: "InstanceStart" } }
    ])

    expect(await inspect(proc)).toEqual({ state: "running", detail: "Running" })
    await expect.poll(() => fs.readFileSync(spec.consoleLog, "utf8")).toContain("Linux version")

    expect(await stop(proc, { graceMs: 10_000 })).toBe("clean")
    expect(isSameProcess(proc.pid, proc.startTime)).toBe(false)
    expect(await inspect(proc)).toMatchObject({ state: "gone" })
    expectNothingLeft(spec)
    expect(await stop(proc, { graceMs: 1000 })).toBe("already-gone")
  })

  describe("surfaces each 400 fault_message verbatim, and leaves no process or socket", () => {
    const cases: Array<[string, Partial<VmLaunchSpec> | (() => Partial<VmLaunchSpec>), string]> = [
      [
        "zero vCPUs",
        { cpus: 0 },
        "Firecracker refused PUT /machine-config (400): Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled."
      ],
      [
        "33 vCPUs",
        { cpus: 33 },
        "Firecracker refused PUT /machine-config (400): Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled."
      ],
      [
        "no memory",
        { memoryMib: 0 },
        "Firecracker refused PUT /machine-config (400): Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size."
      ],
      [
        "a missing kernel",
        { kernel: "/nonexistent/vmlinux" },
        "Firecracker refused PUT /boot-source (400): Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)"
      ],
      [
        "a missing initrd",
        { initrd: "/nonexistent/initrd.img" },
        "Firecracker refused PUT /boot-source (400): Boot source error: The initrd file cannot be opened due to invalid path or invalid permissions. No such file or directory (os error 2)"
      ],
      [
        "a host device that is not a tap",
        { network: { tap: "lo", mac: "02:fc:00:00:00:02" } },
        "Firecracker refused PUT /network-interfaces/eth0 (400): Could not create the network device: Open tap device failed: Error while creating ifreq structure: Invalid argument (os error 22). Invalid TUN/TAP Backend provided by lo. Check our documentation on setting up the network devices."
      ],
      [
        "a missing root disk",
        { rootDisk: "/nonexistent/disk.ext4" },
        "Firecracker refused PUT /drives/rootfs (400): Drive config error: Unable to create the virtio block device"
      ]
    ]
    for (const [label, overrides, expected] of cases) {
      it(label, async () => {
        const name = `fault-${label.replaceAll(" ", "-")}`
        const spec = vmSpec(name, typeof overrides === "function" ? overrides() : overrides)
        const error = await launchFailure(spec)
        expect(error._tag).toBe("VmmError")
        expect(error.vmId).toBe(name)
        expect(error.reason).toContain(expected)
        expectNothingLeft(spec)
      })
    }

    it("a kernel that is not a kernel fails at InstanceStart", async () => {
      const garbage = path.join(root, "not-a-kernel")
      fs.writeFileSync(garbage, Buffer.alloc(4096, 0x5a))
      const spec = vmSpec("fault-start", { kernel: garbage })
      const error = await launchFailure(spec)
      expect(error.reason).toContain(
        "Firecracker refused PUT /actions (400): Start microvm error: System configuration error: Cannot load kernel due to invalid memory configuration or invalid kernel image"
      )
      // The pre-boot configuration was accepted before the start failed.
      expect(loggedRequests(spec.consoleLog).map((request) => request.path)).toEqual([
        "/machine-config",
        "/boot-source",
        "/drives/rootfs",
        "/actions"
      ])
      expectNothingLeft(spec)
    })
  })

  it("refuses a bzImage before starting anything, saying to use QEMU", async () => {
    const spec = vmSpec("bzimage", { kernelFormat: "bzImage" })
    const error = await launchFailure(spec)
    expect(error.message).toBe(
      `VM bzimage: ${spec.kernel} is a bzImage; Firecracker boots only an uncompressed ELF vmlinux kernel (use --vmm qemu, or a vmlinux)`
    )
    expect(fs.existsSync(spec.consoleLog)).toBe(false)
  })

  it("refuses a socket path over 107 bytes before starting anything", async () => {
    const deep = path.join(root, "d".repeat(90))
    const spec = vmSpec("long", { runDir: deep, consoleLog: path.join(deep, "console.log") })
    fs.mkdirSync(deep, { recursive: true })
    const error = await launchFailure(spec)
    expect(error.reason).toMatch(/^socket path .*firecracker\.sock is \d+ bytes, over the 107-byte limit/)
    expect(fs.existsSync(spec.consoleLog)).toBe(false)
  })

  it("replaces a stale socket file left by an earlier VMM", async () => {
    const spec = vmSpec("stale")
    fs.writeFileSync(path.join(spec.runDir, API_SOCKET_FILE), "left by a crash")
    const proc = await launch(spec)
    expect(await inspect(proc)).toMatchObject({ state: "running" })
    expect(await stop(proc, { graceMs: 0, force: true })).toBe("terminated")
    expectNothingLeft(spec)
  })

  it("reports a VMM that exits at once with its own last words", async () => {
    const bin = path.join(root, "exits.sh")
    fs.writeFileSync(bin, '#!/bin/sh\necho "firecracker: KVM is not available here" >&2\nexit 1\n', { mode: 0o755 })
    const spec = vmSpec("exits")
    const error = await launchFailure(spec, { firecrackerBin: bin })
    // Which check sees it first depends on how fast the script exits.
    expect(error.reason).toMatch(
      /^the VMM exited (at once|before its socket appeared): firecracker: KVM is not available here$/
    )
    expectNothingLeft(spec)
  })

  it("kills a VMM whose socket never appears", async () => {
    const bin = path.join(root, "silent.sh")
    // exec keeps the pid: the pid file names the process the launch must kill.
    fs.writeFileSync(bin, '#!/bin/sh\necho $$ > "$(dirname "$2")/pid"\nexec sleep 60\n', { mode: 0o755 })
    const spec = vmSpec("silent")
    const started = Date.now()
    const error = await launchFailure(spec, { firecrackerBin: bin, socketTimeoutMs: 400 })
    expect(error.reason).toBe(`the VMM socket ${path.join(spec.runDir, API_SOCKET_FILE)} did not appear within 400 ms`)
    expect(Date.now() - started).toBeLessThan(5000)
    const pid = Number(fs.readFileSync(path.join(spec.runDir, "pid"), "utf8"))
    expect(isRunning(pid)).toBe(false)
    expectNothingLeft(spec)
  })

  it("a missing binary is a VmmError", async () => {
    const spec = vmSpec("nobinary")
    const error = await launchFailure(spec, { firecrackerBin: path.join(root, "no-such-firecracker") })
    expect(error.reason).toContain("cannot start")
    expect(error.reason).toContain("ENOENT")
    expectNothingLeft(spec)
  })

  it("rolls the VM back when the caller's scope fails after the launch", async () => {
    const spec = vmSpec("rollback")
    let launched: VmProcess | undefined
    const exit = await run(
      Effect.exit(
        Effect.scoped(
          Effect.gen(function* () {
            launched = yield* Effect.flatMap(Vmm, (vmm) => vmm.launch(spec))
            return yield* Effect.fail("a later create step failed")
          })
        )
      )
    )
    expect(Exit.isFailure(exit)).toBe(true)
    expect(launched).toBeDefined()
    expect(isSameProcess(launched!.pid, launched!.startTime)).toBe(false)
    expectNothingLeft(spec)
  })

  it("rolls back a launch interrupted while it waits for the socket", async () => {
    const bin = path.join(root, "slow.sh")
    fs.writeFileSync(bin, '#!/bin/sh\necho $$ > "$(dirname "$2")/pid"\nexec sleep 60\n', { mode: 0o755 })
    const spec = vmSpec("interrupted")
    await run(
      Effect.gen(function* () {
        const vmm = yield* Vmm
        const fiber = yield* Effect.fork(Effect.scoped(vmm.launch(spec)))
        yield* Effect.sleep("300 millis")
        yield* Fiber.interrupt(fiber)
      }),
      { firecrackerBin: bin, socketTimeoutMs: 30_000 }
    )
    const pid = Number(fs.readFileSync(path.join(spec.runDir, "pid"), "utf8"))
    expect(isRunning(pid)).toBe(false)
    expectNothingLeft(spec)
  })

  it("walks the ladder to SIGKILL for a VMM that answers nothing, and never signals a reused pid", async () => {
    const spec = vmSpec("ladder")
    const proc = await launch(spec)
    // A pid reused by another process: same pid, another start time.
    const impostor = { ...proc, startTime: String(Number(proc.startTime) + 1) }
    expect(await inspect(impostor)).toMatchObject({ state: "gone" })
    expect(await stop(impostor, { graceMs: 0, force: true })).toBe("already-gone")
    expect(isSameProcess(proc.pid, proc.startTime)).toBe(true)

    // Stopped, it takes neither the API request nor SIGTERM; SIGKILL still ends it.
    process.kill(proc.pid, "SIGSTOP")
    expect(await inspect(proc)).toMatchObject({ state: "unresponsive" })
    const started = Date.now()
    expect(await stop(proc, { graceMs: 300 })).toBe("killed")
    console.log(`firecracker ladder to SIGKILL took ${Date.now() - started} ms`)
    expectNothingLeft(spec)
  })
})

describe("Firecracker API (the double must behave like the real server)", () => {
  /** A bare VMM with only its socket: the API before any configuration. */
  const bareVmm = async (name: string) => {
    const runDir = path.join(root, name)
    fs.mkdirSync(runDir, { recursive: true })
    const socket = path.join(runDir, API_SOCKET_FILE)
    const child = spawn(firecrackerBin, ["--api-sock", socket, "--id", name], { stdio: "ignore" })
    await expect.poll(() => fs.existsSync(socket), { timeout: 5000 }).toBe(true)
    return { api: firecrackerApi(name, socket), child }
  }
  const refusal = (effect: Effect.Effect<unknown, VmmError>) =>
    Effect.runPromise(Effect.flip(effect)).then((error) => error.reason)

  it("answers instance info, refuses unknown fields, missing fields, ctrl-alt-del before start, and a second start", async () => {
    const { api, child } = await bareVmm("bare")
    try {
      const info = await Effect.runPromise(api.get("/"))
      expect(info).toMatchObject({ id: "bare", state: "Not started", app_name: "Firecracker" })
      expect(await refusal(api.put("/actions", { action_type: "SendCtrlAltDel" }))).toBe(
        "Firecracker refused PUT /actions (400): The requested operation is not supported before starting the microVM."
      )
      expect(await refusal(api.put("/machine-config", { vcpu_count: 1, mem_size_mib: 128, cpus: 1 }))).toContain(
        "An error occurred when deserializing the json body of a request: unknown field `cpus`"
      )
      expect(await refusal(api.put("/machine-config", { vcpu_count: 1 }))).toContain("missing field `mem_size_mib`")
      expect(await refusal(api.put("/boot-source", { kernel_image_path: 5 }))).toContain("invalid type")
      expect(await refusal(api.put("/drives/rootfs", { drive_id: "other", is_root_device: true }))).toBe(
        "Firecracker refused PUT /drives/rootfs (400): The id from the path does not match the id from the body!"
      )
      expect(await refusal(api.put("/actions", { action_type: "InstanceStart" }))).toBe(
        "Firecracker refused PUT /actions (400): Start microvm error: Cannot start microvm without kernel configuration."
      )
      expect(await refusal(api.put("/nonsense", { a: 1 }))).toBe(
        "Firecracker refused PUT /nonsense (400): Invalid request method and/or path: PUT nonsense."
      )

      const disk = path.join(root, "bare", "disk.img")
      makeDisk(disk, 8)
      await Effect.runPromise(api.put("/boot-source", { kernel_image_path: kernel, boot_args: "console=ttyS0" }))
      await Effect.runPromise(
        api.put("/drives/rootfs", { drive_id: "rootfs", path_on_host: disk, is_root_device: true, is_read_only: false })
      )
      await Effect.runPromise(api.put("/actions", { action_type: "InstanceStart" }))
      expect(await Effect.runPromise(api.get("/"))).toMatchObject({ state: "Running" })
      const postBoot = "(400): The requested operation is not supported after starting the microVM."
      expect(await refusal(api.put("/actions", { action_type: "InstanceStart" }))).toContain(postBoot)
      expect(await refusal(api.put("/machine-config", { vcpu_count: 1, mem_size_mib: 128 }))).toContain(postBoot)
      expect(await refusal(api.put("/boot-source", { kernel_image_path: kernel }))).toContain(postBoot)
    } finally {
      child.kill("SIGKILL")
    }
  })

  it("refuses to start on a socket path already in use", async () => {
    const runDir = path.join(root, "inuse")
    fs.mkdirSync(runDir)
    const socket = path.join(runDir, API_SOCKET_FILE)
    fs.writeFileSync(socket, "")
    const child = spawn(firecrackerBin, ["--api-sock", socket, "--id", "inuse"], {
      stdio: ["ignore", "ignore", "pipe"]
    })
    let stderr = ""
    child.stderr.on("data", (chunk) => {
      stderr += chunk
    })
    const code = await new Promise((resolve) => child.once("exit", resolve))
    expect(code).not.toBe(0)
    expect(stderr).toContain(`Failed to open the API socket at: ${socket}. Check that it is not already used.`)
  })
})
