/**
 * The QEMU backend with a real qemu: one shared TCG boot of the Debian cloud kernel (via `--accel
 * auto`, which on this host must fall back from KVM), a second VM launched by a Node process that
 * then exits, and a launch that fails. The initramfs finds no root= and waits in its shell, so the
 * guest keeps running until the test stops it.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { VmmError } from "../../src/domain/errors.js"
import type { VmLaunchSpec, VmProcess } from "../../src/domain/vmm.js"
import { isSameProcess } from "../../src/layers/vmm/process.js"
import { KVM_BROKEN_FILE } from "../../src/layers/vmm/qemu/kvm-host.js"
import { QEMU_LOG_FILE, QMP_SOCKET_FILE } from "../../src/layers/vmm/qemu/qemu-vmm.js"
import { qmpExecute } from "../../src/layers/vmm/qemu/qmp-client.js"
import { Vmm, type VmmConfig } from "../../src/layers/vmm/vmm.js"
import { findCloudKernel } from "../support/qemu.js"
import { makeDisk, makeSpec, processesMentioning } from "../support/vmm.js"

const KVM_SILENCE_MS = 4000

let root: string
let hostState: string
let cloud: { kernel: string; initrd: string }
/** Whether /dev/kvm opens here; if not, auto is made to try KVM anyway, and QEMU's failure under it is the fallback's trigger. */
let kvmOpens: boolean

const config = (): VmmConfig => ({
  hostStateDir: hostState,
  kvmSilenceMs: KVM_SILENCE_MS,
  kvmDeviceOpens: kvmOpens ? undefined : () => true
})
const run = <A, E>(effect: Effect.Effect<A, E, Vmm>) =>
  Effect.runPromise(effect.pipe(Effect.provide(Vmm.layer(config()))))
const inspect = (proc: VmProcess) => run(Effect.flatMap(Vmm, (vmm) => vmm.inspect(proc)))
const stop = (proc: VmProcess, options: { graceMs: number; force?: boolean }) =>
  run(Effect.flatMap(Vmm, (vmm) => vmm.stop(proc, options)))

const qemuSpec = (name: string, overrides: Partial<VmLaunchSpec> = {}) => {
  const spec = makeSpec(root, name, {
    backend: "qemu",
    accel: "tcg",
    kernel: cloud.kernel,
    kernelFormat: "bzImage",
    initrd: cloud.initrd,
    memoryMib: 256,
    bootArgs: "console=ttyS0",
    ...overrides
  })
  makeDisk(spec.rootDisk)
  return spec
}

const expectNothingLeft = (spec: VmLaunchSpec) => {
  expect(processesMentioning(spec.runDir)).toEqual([])
  expect(fs.existsSync(path.join(spec.runDir, QMP_SOCKET_FILE))).toBe(false)
}

const consoleText = (spec: VmLaunchSpec) => fs.readFileSync(spec.consoleLog, "latin1")

beforeAll(async () => {
  cloud = await findCloudKernel()
  root = fs.mkdtempSync(path.join(os.tmpdir(), "bvq-"))
  hostState = path.join(root, "host")
  try {
    fs.closeSync(fs.openSync("/dev/kvm", "r+"))
    kvmOpens = true
  } catch {
    kvmOpens = false
  }
})
afterAll(() => {
  for (const pid of processesMentioning(root)) process.kill(pid, "SIGKILL")
  fs.rmSync(root, { recursive: true, force: true })
})

describe("QEMU backend (real qemu)", () => {
  let spec: VmLaunchSpec
  let proc: VmProcess

  it("--accel auto: a KVM guest that prints no kernel output is retried under TCG, and the host remembered", async () => {
    spec = qemuSpec("shared", { accel: "auto" })
    const before = await run(Effect.flatMap(Vmm, (vmm) => vmm.kvmStatus))
    expect(before.usable).toBe(true)
    proc = await run(Effect.scoped(Effect.flatMap(Vmm, (vmm) => vmm.launch(spec))))
    console.log(
      `qemu auto (${kvmOpens ? "/dev/kvm opens" : "no /dev/kvm: probe injected"}): ${proc.accel} (${proc.accelReason}); spawned after ${proc.timings.spawnedMs.toFixed(1)} ms, guest started after ${proc.timings.startedMs.toFixed(1)} ms`
    )
    expect(proc).toMatchObject({
      vmId: "shared",
      backend: "qemu",
      controlSocket: path.join(spec.runDir, QMP_SOCKET_FILE)
    })
    if (proc.accel === "kvm") {
      // A host whose KVM runs guests: the kernel spoke in time, nothing is remembered.
      expect(consoleText(spec)).toMatch(/Linux version \d/)
      expect(fs.existsSync(path.join(hostState, KVM_BROKEN_FILE))).toBe(false)
      return
    }
    expect(proc.accel).toBe("tcg")
    expect(proc.timings.startedMs).toBeGreaterThan(kvmOpens ? KVM_SILENCE_MS : 0)
    if (kvmOpens) {
      expect(proc.accelReason).toContain("retried under TCG")
      expect(fs.readFileSync(path.join(hostState, KVM_BROKEN_FILE), "utf8")).toContain("no kernel output")
      const after = await run(Effect.flatMap(Vmm, (vmm) => vmm.kvmStatus))
      expect(after).toMatchObject({ usable: false })
      expect(after.reason).toContain("KVM guests do not run on this host")
    } else {
      expect(proc.accelReason).toContain("QEMU failed under KVM")
    }
    // Only the TCG guest is left: the KVM attempt was killed.
    expect(processesMentioning(spec.runDir)).toEqual([proc.pid])
  })

  it("boots the cloud kernel under TCG: kernel output in the console log, inspect says running, QMP answers", async () => {
    expect(fs.readFileSync(path.join(spec.runDir, QEMU_LOG_FILE), "utf8")).not.toContain("error")
    const booted = Date.now()
    await expect.poll(() => consoleText(spec), { timeout: 60_000, interval: 200 }).toMatch(/Linux version \d/)
    console.log(`qemu TCG: kernel banner seen ${Date.now() - booted} ms after the launch returned`)
    expect(await inspect(proc)).toEqual({ state: "running", detail: "running" })
    const status = await Effect.runPromise(qmpExecute("shared", proc.controlSocket, "query-status"))
    expect(status).toMatchObject({ running: true, status: "running" })
    // Its own session: a daemon's process group going away does not take the VM along.
    const stat = fs.readFileSync(`/proc/${proc.pid}/stat`, "latin1")
    const session = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3])
    expect(session).toBe(proc.pid)
  })

  it("a reused pid is not ours: inspect says gone and stop never signals it", async () => {
    const impostor = { ...proc, startTime: String(Number(proc.startTime) - 1) }
    expect(await inspect(impostor)).toMatchObject({ state: "gone" })
    expect(await stop(impostor, { graceMs: 0 })).toBe("already-gone")
    expect(isSameProcess(proc.pid, proc.startTime)).toBe(true)
    expect(await inspect(proc)).toMatchObject({ state: "running" })
    // A socket that a live VMM still serves is not taken for a stale one.
    expect(fs.existsSync(proc.controlSocket)).toBe(true)
  })

  it("stop: system_powerdown is ignored by the initramfs, the grace runs out, SIGTERM ends QEMU", async () => {
    const started = Date.now()
    expect(await stop(proc, { graceMs: 1500 })).toBe("terminated")
    const took = Date.now() - started
    console.log(`qemu stop (powerdown, 1.5 s grace, SIGTERM) took ${took} ms`)
    expect(took).toBeGreaterThanOrEqual(1500)
    expect(fs.readFileSync(path.join(spec.runDir, QEMU_LOG_FILE), "utf8")).toContain("terminating on signal 15")
    expect(await inspect(proc)).toMatchObject({ state: "gone" })
    expectNothingLeft(spec)
  })

  it("a VM outlives the process that launched it; a frozen one is ended by SIGKILL", async () => {
    const child = qemuSpec("detached")
    const output = execFileSync(
      process.execPath,
      [
        "--import",
        "tsx",
        path.join(import.meta.dirname, "..", "support", "vmm-launch-child.ts"),
        JSON.stringify(child),
        hostState
      ],
      { encoding: "utf8", timeout: 60_000 }
    )
    const launched = JSON.parse(output) as VmProcess
    expect(launched).toMatchObject({ vmId: "detached", accel: "tcg" })
    console.log(
      `qemu --accel tcg: spawned after ${launched.timings.spawnedMs.toFixed(1)} ms, guest started (QMP: running) after ${launched.timings.startedMs.toFixed(1)} ms`
    )
    // The launcher has exited (execFileSync returned); the VMM runs on, reparented.
    expect(isSameProcess(launched.pid, launched.startTime)).toBe(true)
    expect(await inspect(launched)).toMatchObject({ state: "running" })
    process.kill(launched.pid, "SIGSTOP")
    expect(await inspect(launched)).toMatchObject({ state: "unresponsive" })
    expect(await stop(launched, { graceMs: 200 })).toBe("killed")
    expectNothingLeft(child)
  })

  it("a kernel QEMU cannot load fails the launch with QEMU's own words, leaving nothing", async () => {
    const bad = qemuSpec("badkernel", { kernel: path.join(root, "no-such-vmlinuz") })
    const error = (await run(Effect.flip(Effect.scoped(Effect.flatMap(Vmm, (vmm) => vmm.launch(bad)))))) as VmmError
    expect(error._tag).toBe("VmmError")
    expect(error.reason).toContain("no-such-vmlinuz")
    expect(error.reason).toMatch(/could not load kernel|No such file/i)
    expectNothingLeft(bad)
  })
})
