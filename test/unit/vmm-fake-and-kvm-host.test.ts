import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { VmmError } from "../../src/domain/errors.js"
import type { VmLaunchSpec } from "../../src/domain/vmm.js"
import { forgetKvmBroken, KVM_BROKEN_FILE, kvmStatus, rememberKvmBroken } from "../../src/layers/vmm/qemu/kvm-host.js"
import { makeVmmFake, Vmm } from "../../src/layers/vmm/vmm.js"

const root = fs.mkdtempSync(path.join(os.tmpdir(), "bvu-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

const spec: VmLaunchSpec = {
  vmId: "v1",
  backend: "qemu",
  accel: "tcg",
  cpus: 1,
  memoryMib: 128,
  kernel: "/k",
  kernelFormat: "bzImage",
  bootArgs: "console=ttyS0",
  rootDisk: "/d",
  runDir: "/r",
  consoleLog: "/r/console.log"
}

describe("Vmm.layerTest", () => {
  it("records launches and stops, and a launch whose scope fails is rolled back", async () => {
    const fake = makeVmmFake()
    const run = <A, E>(effect: Effect.Effect<A, E, Vmm>) =>
      Effect.runPromiseExit(effect.pipe(Effect.provide(Vmm.layerTest(fake))))
    const kept = await run(Effect.scoped(Effect.flatMap(Vmm, (vmm) => vmm.launch(spec))))
    const failed = await run(
      Effect.scoped(
        Effect.flatMap(Vmm, (vmm) => vmm.launch({ ...spec, vmId: "v2" })).pipe(Effect.zipRight(Effect.fail("later")))
      )
    )
    expect(Exit.isSuccess(kept)).toBe(true)
    expect(Exit.isFailure(failed)).toBe(true)
    expect(fake.launches.map((launch) => launch.vmId)).toEqual(["v1", "v2"])
    expect(fake.rolledBack).toEqual(["v2"])
    expect([...fake.running]).toEqual(["v1"])

    const proc = Exit.isSuccess(kept) ? kept.value : undefined
    const inspected = await run(Effect.flatMap(Vmm, (vmm) => vmm.inspect(proc!)))
    expect(inspected).toEqual(Exit.succeed({ state: "running", detail: "fake" }))
    await run(Effect.flatMap(Vmm, (vmm) => vmm.stop(proc!, { graceMs: 100 })))
    await run(Effect.flatMap(Vmm, (vmm) => vmm.stop(proc!, { graceMs: 100 })))
    expect(fake.stops.map((stop) => stop.outcome)).toEqual(["clean", "already-gone"])

    fake.failLaunch = new VmmError({ vmId: "v3", reason: "injected" })
    const refused = await run(Effect.scoped(Effect.flatMap(Vmm, (vmm) => vmm.launch({ ...spec, vmId: "v3" }))))
    expect(refused).toEqual(Exit.fail(fake.failLaunch))
  })
})

describe("kvmStatus", () => {
  it("follows the device probe, and a remembered broken host wins over a device that opens", async () => {
    const hostStateDir = path.join(root, "host")
    const opens = { kvmDevice: "/dev/kvm", hostStateDir, deviceOpens: () => true }
    const closed = { ...opens, deviceOpens: () => false }
    expect(await Effect.runPromise(kvmStatus(opens))).toEqual({ usable: true, reason: "/dev/kvm opens read-write" })
    expect(await Effect.runPromise(kvmStatus(closed))).toEqual({
      usable: false,
      reason: "/dev/kvm cannot be opened read-write"
    })
    await Effect.runPromise(rememberKvmBroken(opens, "a guest stayed silent"))
    expect(fs.readdirSync(hostStateDir)).toEqual([KVM_BROKEN_FILE])
    const remembered = await Effect.runPromise(kvmStatus(opens))
    expect(remembered.usable).toBe(false)
    expect(remembered.reason).toMatch(/^KVM guests do not run on this host \(.*: a guest stayed silent\)$/)
    await Effect.runPromise(forgetKvmBroken(opens))
    expect(await Effect.runPromise(kvmStatus(opens))).toMatchObject({ usable: true })
  })
})
