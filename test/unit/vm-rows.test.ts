import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { Vm } from "../../src/domain/vm.js"
import { StatePaths } from "../../src/layers/state/state-paths.js"
import { Store } from "../../src/layers/store/store.js"

const vm = (name: string, overrides: Partial<ConstructorParameters<typeof Vm>[0]> = {}) =>
  new Vm({
    id: `vm-${name}`,
    name,
    image: "debian-bookworm",
    imageId: "img1",
    vmm: "qemu",
    vmmReason: "no firecracker binary",
    kernelFormat: "bzImage",
    init: "/.banger/init",
    accel: "auto",
    cpus: 2,
    memoryMib: 1024,
    diskBytes: 8 * 2 ** 30,
    dir: `/state/vms/vm-${name}`,
    state: "running",
    pid: 4242,
    pidStartTime: "123456",
    runningAccel: "tcg",
    accelReason: "--accel auto: KVM guests do not run on this host",
    controlSocket: "/state/vms/x/qmp.sock",
    lastExit: null,
    createdAt: "2026-12-05T00:00:00.000Z",
    startedAt: "2026-12-05T00:00:01.000Z",
    stoppedAt: null,
    ...overrides
  })

describe("Store.vms (real SQLite file)", () => {
  it.live("round-trips rows, refuses a taken name, updates, lists by image, removes", () =>
    Effect.acquireUseRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "banger-vms-"))),
      (root) =>
        Effect.gen(function* () {
          const store = yield* Store
          yield* store.vms.insert(vm("dev"))
          yield* store.vms.insert(vm("web", { imageId: "img2", pid: null, pidStartTime: null, state: "stopped" }))
          expect(Option.getOrThrow(yield* store.vms.find("dev"))).toEqual(vm("dev"))
          const taken = yield* Effect.flip(store.vms.insert(vm("dev", { id: "other" })))
          expect(taken._tag).toBe("VmNameTaken")
          const stopped = vm("dev", { state: "stopped", pid: null, pidStartTime: null, lastExit: "powered off" })
          yield* store.vms.update(stopped)
          expect(Option.getOrThrow(yield* store.vms.find("dev"))).toEqual(stopped)
          expect((yield* store.vms.list).map((row) => row.name)).toEqual(["dev", "web"])
          expect(yield* store.vms.usingImage("img1")).toEqual(["dev"])
          expect(yield* store.vms.remove("vm-dev")).toBe(true)
          expect(yield* store.vms.remove("vm-dev")).toBe(false)
          expect(yield* store.vms.usingImage("img1")).toEqual([])
        }).pipe(Effect.provide(Store.layer.pipe(Layer.provide(StatePaths.layer(path.join(root, "state")))))),
      (root) => Effect.sync(() => fs.rmSync(root, { recursive: true, force: true }))
    )
  )
})
