import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Ref } from "effect"
import { bootArgs } from "../../src/pipelines/vm/boot-args.js"
import { chooseVmm } from "../../src/pipelines/vm/choose-vmm.js"
import { readyLine, waitReady } from "../../src/pipelines/vm/wait-ready.js"

describe("chooseVmm", () => {
  const everything = { firecracker: true, kvmUsable: true }
  const elf = { format: "elf", pvh: false } as const
  const pvhElf = { format: "elf", pvh: true } as const
  const bz = { format: "bzImage", pvh: false } as const
  it("defaults to firecracker only when its binary, KVM and an ELF kernel are all there", () => {
    expect(chooseVmm(undefined, elf, everything)).toMatchObject({ _tag: "Chosen", vmm: "firecracker" })
    const bzImage = chooseVmm(undefined, bz, everything)
    expect(bzImage).toMatchObject({ _tag: "Chosen", vmm: "qemu" })
    expect(bzImage._tag === "Chosen" && bzImage.reason).toContain("uncompressed ELF vmlinux; this kernel is bzImage")
    const noBin = chooseVmm(undefined, pvhElf, { firecracker: false, kvmUsable: true })
    expect(noBin._tag === "Chosen" && noBin.reason).toContain("no firecracker binary")
    const noKvm = chooseVmm(undefined, pvhElf, { firecracker: true, kvmUsable: false })
    expect(noKvm._tag === "Chosen" && noKvm.reason).toContain("/dev/kvm")
  })
  it("honours --vmm, refusing firecracker with the reason when it cannot boot the kernel", () => {
    expect(chooseVmm("qemu", pvhElf, everything)).toEqual({ _tag: "Chosen", vmm: "qemu", reason: "--vmm qemu" })
    expect(chooseVmm("firecracker", elf, everything)).toMatchObject({ _tag: "Chosen", vmm: "firecracker" })
    const refused = chooseVmm("firecracker", bz, everything)
    expect(refused._tag).toBe("Refused")
    expect(refused.reason).toContain("use --vmm qemu")
  })
  it("refuses QEMU for an ELF kernel without a PVH note, asked for or left as the only choice", () => {
    const asked = chooseVmm("qemu", elf, everything)
    expect(asked._tag).toBe("Refused")
    expect(asked.reason).toContain("PVH entry note")
    const noFirecracker = chooseVmm(undefined, elf, { firecracker: false, kvmUsable: true })
    expect(noFirecracker._tag).toBe("Refused")
    expect(noFirecracker.reason).toContain("boots only under Firecracker, which cannot run here: no firecracker binary")
    expect(chooseVmm(undefined, pvhElf, { firecracker: false, kvmUsable: false })).toMatchObject({
      _tag: "Chosen",
      vmm: "qemu"
    })
  })
})

describe("bootArgs", () => {
  it("boots the console on ttyS0, keeps eth0, and adds init= only for the built-in init", () => {
    expect(bootArgs({ vmm: "qemu" })).toBe("console=ttyS0 reboot=k panic=1 root=/dev/vda rw net.ifnames=0")
    expect(bootArgs({ vmm: "firecracker", init: "/.banger/init" })).toBe(
      "console=ttyS0 reboot=k panic=1 root=/dev/vda rw net.ifnames=0 pci=off init=/.banger/init"
    )
  })
})

const withLog = <A, E>(body: (log: string) => Effect.Effect<A, E, NodeContext.NodeContext>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "banger-ready-"))),
    (dir) => {
      const log = path.join(dir, "console.log")
      fs.writeFileSync(log, "")
      return body(log)
    },
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  ).pipe(Effect.provide(NodeContext.layer))

describe("waitReady (a real console log being written)", () => {
  it.live("returns once the ready line is appended, even mid-line after kernel output", () =>
    withLog((log) =>
      Effect.gen(function* () {
        setTimeout(() => fs.appendFileSync(log, "[    0.1] Linux version 6.1\n"), 50)
        setTimeout(() => fs.appendFileSync(log, `[    2.0] systemd[1]: ${readyLine("dev")}\r\n`), 300)
        yield* waitReady({ name: "dev", consoleLog: log, timeout: "5 seconds", alive: Effect.succeed(true) })
      })
    )
  )
  it.live("fails with the console's tail when the VMM exits first", () =>
    withLog((log) =>
      Effect.gen(function* () {
        fs.appendFileSync(log, "Kernel panic - not syncing: VFS: Unable to mount root fs\n")
        const alive = yield* Ref.make(true)
        setTimeout(() => Effect.runSync(Ref.set(alive, false)), 200)
        const error = yield* Effect.flip(
          waitReady({ name: "dev", consoleLog: log, timeout: "5 seconds", alive: Ref.get(alive) })
        )
        expect(error.message).toContain("the VMM exited before the guest was ready")
        expect(error.message).toContain("Unable to mount root fs")
      })
    )
  )
  it.live("times out naming the line it waited for; another VM's ready line does not count", () =>
    withLog((log) =>
      Effect.gen(function* () {
        fs.appendFileSync(log, `${readyLine("devbox")}\n${readyLine("other")}\n`)
        const error = yield* Effect.flip(
          waitReady({ name: "dev", consoleLog: log, timeout: "400 millis", alive: Effect.succeed(true) })
        )
        expect(error.message).toContain('did not print "banger: dev ready"')
      })
    )
  )
})
