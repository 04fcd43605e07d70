/**
 * VMs end to end under QEMU TCG through the real CLI and daemon: images pulled from a real
 * registry (a scratch image holding one static binary, a container-style Debian with no init, a
 * systemd Debian), booted with Debian's cloud kernel, their lifecycle, a daemon killed under a
 * running VM, a VMM killed under the daemon, and the failures that must leave nothing behind.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import Database from "better-sqlite3"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { errorLines, expectOneLineError, runBanger, startBanger, startBangerDaemon } from "../support/banger-cli.js"
import { debianRootfs } from "../support/debian-rootfs.js"
import { buildLayer } from "../support/layers.js"
import { findCloudKernel } from "../support/qemu.js"
import { pushImage, startRegistry, type TestRegistry } from "../support/registry.js"
import { layerFromDirectory, whiteout } from "../support/rootfs-layers.js"
import { qemuProcessesNaming } from "../support/vm-processes.js"

let registry: TestRegistry
let work: string
let state: string
let kernel: Awaited<ReturnType<typeof findCloudKernel>>

const banger = (...args: Array<string>) => runBanger(["--state-dir", state, ...args], { timeoutMs: 600_000 })

const ok = async (...args: Array<string>) => {
  const result = await banger(...args)
  if (result.code !== 0) {
    throw new Error(`banger ${args.join(" ")} exited ${result.code}:\n${result.stderr}\n${result.stdout}`)
  }
  return result.stdout
}

const json = async <A = Record<string, unknown>>(...args: Array<string>): Promise<A> =>
  JSON.parse(await ok(...args, "--json")) as A

const vmRows = (): Array<{ name: string }> => {
  const db = new Database(path.join(state, "banger.db"), { readonly: true })
  try {
    return db.prepare("SELECT name FROM vms ORDER BY name").all() as Array<{ name: string }>
  } finally {
    db.close()
  }
}

const vmDirs = () => (fs.existsSync(path.join(state, "vms")) ? fs.readdirSync(path.join(state, "vms")) : [])

/** Live processes whose command line names this test's state dir (VMMs, daemons). */
const processesNaming = (needle: string) =>
  fs
    .readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")
        return argv.includes(needle) && !argv.includes("vitest")
      } catch {
        return false
      }
    })
    .map(Number)

/** QEMU processes running this test's VMs. */
const vmmProcesses = () => qemuProcessesNaming(path.join(state, "vms"))

const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

/** A `vm create` of the scratch image left running in the background, for a test to interrupt. */
const startCreate = (name: string) =>
  startBanger([
    "--state-dir",
    state,
    "vm",
    "create",
    name,
    "--image",
    "app-image",
    "--accel",
    "tcg",
    "--disk-size",
    "1G",
    // What this file tests is the VM lifecycle, in the host's namespace: no taps there (vm-network tests them).
    "--no-network"
  ])

let daemon: Awaited<ReturnType<typeof startBangerDaemon>> | undefined

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-vm-"))
  state = path.join(work, "state")
  kernel = await findCloudKernel()
  registry = await startRegistry()

  // A scratch image: one static binary, run through its Entrypoint + Cmd with Env and WorkingDir.
  const busybox = fs.readFileSync("/bin/busybox")
  const app = await buildLayer([
    { type: "directory", name: "bin" },
    { type: "file", name: "bin/busybox", mode: 0o755, content: busybox },
    { type: "directory", name: "work" }
  ])
  await pushImage(registry, "scratch-app", "1", {
    layers: [app],
    config: {
      config: {
        Entrypoint: ["/bin/busybox", "sh", "-c"],
        Cmd: ['echo "hello $GREETING from $(/bin/busybox pwd)"; exec /bin/busybox sleep 100000'],
        Env: ["GREETING=banger-world", "PATH=/bin"],
        WorkingDir: "/work"
      }
    }
  })

  // Debian with systemd (the golden package list), and the same without an init: container-style.
  const rootfs = await debianRootfs()
  const base = await layerFromDirectory(rootfs, { output: path.join(work, "debian.tar.gz"), level: 1 })
  await pushImage(registry, "debian-systemd", "1", { layers: [base] })
  const noInit = await buildLayer([whiteout("usr/sbin/init")])
  await pushImage(registry, "debian-container", "1", {
    layers: [base, noInit],
    config: { config: { Cmd: ["/bin/sh", "-c", "echo container-style on $(cat /etc/hostname); exec sleep 100000"] } }
  })

  daemon = await startBangerDaemon(state)
  const boot = ["--kernel", kernel.kernel, "--initrd", kernel.initrd]
  await ok("image", "pull", `${registry.host}/scratch-app:1`, "--name", "app-image", ...boot)
  await ok("image", "pull", `${registry.host}/debian-container:1`, "--name", "debian-container", ...boot)
  // With the kernel's modules: systemd hears the ACPI power button through them (button, evdev).
  const modules = path.join("/lib/modules", kernel.version)
  await ok(
    "image",
    "pull",
    `${registry.host}/debian-systemd:1`,
    "--name",
    "debian-systemd",
    ...boot,
    "--modules",
    modules
  )
}, 1_800_000)

afterAll(async () => {
  // Whatever a failed assertion left running: VMMs of this state dir, by pid, then the daemon.
  for (const pid of vmmProcesses()) process.kill(pid, "SIGKILL")
  await daemon?.stop()
  await registry?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

describe("banger vm (QEMU TCG)", () => {
  it("refuses bad input with one line and leaves nothing", async () => {
    expectOneLineError(
      await banger("vm", "create", "big", "--image", "app-image", "--memory", "9999999"),
      /more than this host can give/
    )
    expectOneLineError(
      await banger("vm", "create", "x", "--image", "no-such-image"),
      /not a local image nor a catalog image/
    )
    expectOneLineError(await banger("vm", "create", "Bad_Name", "--image", "app-image"), /invalid name/)
    expectOneLineError(
      await banger("vm", "create", "fc", "--image", "app-image", "--vmm", "firecracker"),
      /--vmm firecracker: .*use --vmm qemu/
    )
    expectOneLineError(await banger("vm", "show", "nope"), /VM "nope" not found/)
    expectOneLineError(
      await banger("vm", "create", "tiny", "--image", "app-image", "--disk-size", "512M"),
      /cannot be smaller than its image's filesystem/
    )
    expect(vmRows()).toEqual([])
    expect(vmDirs()).toEqual([])
    expect(vmmProcesses()).toEqual([])
  })

  it("a scratch image: boots with the built-in init, runs its command, survives a daemon kill -9, stops, starts", async () => {
    const created = await json(
      "vm",
      "create",
      "app",
      "--image",
      "app-image",
      "--accel",
      "tcg",
      "--memory",
      "256",
      "--disk-size",
      "1G",
      "--no-network"
    )
    expect(created).toMatchObject({
      name: "app",
      state: "running",
      vmm: "qemu",
      runningAccel: "tcg",
      init: "/.banger/init"
    })
    expect(String(created.vmmReason)).toContain("firecracker")
    const logs = await ok("vm", "logs", "app")
    expect(logs).toContain("banger: app ready")
    await until("the command's output", async () =>
      (await ok("vm", "logs", "app")).includes("hello banger-world from /work")
    )
    expectOneLineError(await banger("vm", "create", "app", "--image", "app-image"), /VM "app" already exists/)

    // The daemon dies under the running VM: the next one finds it running, and can stop it.
    await daemon!.kill()
    daemon = await startBangerDaemon(state)
    const listed = await json<Array<{ name: string; state: string; pid: number }>>("vm", "list")
    expect(listed).toEqual([expect.objectContaining({ name: "app", state: "running", pid: created.pid })])

    const stopped = await json("vm", "stop", "app")
    expect(stopped).toMatchObject({ state: "stopped", pid: null })
    expect(processesNaming(`${created.dir}/`)).toEqual([])

    // What a forced stop can leave (the guest's journal not replayed): a bitmap whose checksum does
    // not match, which debugfs refuses to open. The start repairs it first.
    const disk = `${created.dir}/disk.ext4`
    execFileSync("debugfs", ["-w", "-R", "set_bg 0 block_bitmap_csum 0", disk], { stdio: "ignore" })
    expect(execFileSync("debugfs", ["-R", "ls -p <2>", disk], { encoding: "utf8", stdio: "pipe" })).not.toContain("/2/")

    const started = await json("vm", "start", "app")
    expect(started).toMatchObject({ state: "running" })
    expect(started.pid).not.toBe(created.pid)
    expect((await ok("vm", "logs", "app")).split("banger: app ready").length - 1).toBe(2)
    expectOneLineError(await banger("vm", "start", "app"), /it is running already/)

    const restarted = await json("vm", "restart", "app")
    expect(restarted).toMatchObject({ state: "running" })
    expect(restarted.pid).not.toBe(started.pid)
    expect(fs.existsSync(`/proc/${started.pid}`)).toBe(false)
    expect((await ok("vm", "logs", "app")).split("banger: app ready").length - 1).toBe(3)

    // The VMM dies on its own (kill -9): the daemon reports it stopped, and says how.
    process.kill(restarted.pid as number, "SIGKILL")
    await until("the VMM to go", () => !fs.existsSync(`/proc/${restarted.pid}`))
    const after = await json("vm", "show", "app")
    expect(after).toMatchObject({ state: "stopped" })
    expect(String(after.lastExit)).toContain("exited on its own")

    await ok("vm", "delete", "app")
    expect(vmRows()).toEqual([])
    expect(vmDirs()).toEqual([])
    expect(vmmProcesses()).toEqual([])
  }, 600_000)

  it("a container-style Debian (no init) runs its Cmd; a running VM needs --force to delete", async () => {
    await ok(
      "vm",
      "create",
      "deb",
      "--image",
      "debian-container",
      "--accel",
      "tcg",
      "--disk-size",
      "2G",
      "--no-network"
    )
    await until("the Cmd's output", async () => (await ok("vm", "logs", "deb")).includes("container-style on deb"))
    expectOneLineError(await banger("vm", "delete", "deb"), /is running: stop it first/)
    expectOneLineError(await banger("image", "delete", "debian-container"), /used by VM\(s\) deb/)
    await ok("vm", "delete", "deb", "--force")
    expect(vmRows()).toEqual([])
    expect(vmmProcesses()).toEqual([])
  }, 600_000)

  it("a systemd Debian boots its own init to the ready unit and powers off on stop", async () => {
    const vm = await json(
      "vm",
      "create",
      "sysd",
      "--image",
      "debian-systemd",
      "--accel",
      "tcg",
      "--memory",
      "1024",
      "--disk-size",
      "2G",
      "--no-network"
    )
    try {
      expect(vm).toMatchObject({ state: "running", init: null })
      const logs = await ok("vm", "logs", "sysd")
      expect(logs).toContain("banger: sysd ready")
      const stopped = await json("vm", "stop", "sysd")
      const console = (await ok("vm", "logs", "sysd")).split("\n").slice(-25).join("\n")
      expect(stopped.lastExit, console).toBe("powered off")
      expect(stopped.state).toBe("stopped")
    } finally {
      // Whatever failed above, the later tests start with no VM.
      await banger("vm", "delete", "sysd", "--force")
    }
    expect(vmDirs()).toEqual([])
  }, 600_000)

  it("a kernel that cannot boot: the create fails with the console's words and rolls everything back", async () => {
    const broken = path.join(work, "broken-vmlinuz")
    // A real bzImage's setup header over a cut-off kernel: recognised as a bzImage, never boots.
    fs.writeFileSync(broken, fs.readFileSync(kernel.kernel).subarray(0, 256 * 1024))
    await ok("image", "pull", `${registry.host}/scratch-app:1`, "--name", "broken", "--kernel", broken)
    const result = await banger(
      "vm",
      "create",
      "doomed",
      "--image",
      "broken",
      "--accel",
      "tcg",
      "--disk-size",
      "1G",
      "--no-network"
    )
    expect(result.code).not.toBe(0)
    // Progress lines, then exactly one error line.
    expect(errorLines(result.stderr), result.stderr).toHaveLength(1)
    expect(vmRows()).toEqual([])
    expect(vmDirs()).toEqual([])
    expect(vmmProcesses()).toEqual([])
    await ok("image", "delete", "broken")
  }, 300_000)

  it("Ctrl-C during boot cancels the create: the VMM is killed, the disk and row never stay", async () => {
    const running = startCreate("gone")
    await until("the VMM to start", () => vmmProcesses().length > 0, 120_000)
    // Booting, the guest not ready yet: the built-in init takes seconds under TCG to print its line.
    expect(await ok("op", "list", "--json")).toMatch(/"stage": "(boot|ready)"/)
    running.child.kill("SIGINT")
    const result = await running.result
    expect(result.code).toBe(130)
    await until("the rollback", () => vmmProcesses().length === 0 && vmDirs().length === 0, 30_000)
    expect(vmRows()).toEqual([])
  }, 300_000)

  it("the daemon killed -9 mid-create leaves a VMM and a disk no row knows: the next daemon removes both", async () => {
    const running = startCreate("orphan")
    await until("the VMM to start", () => vmmProcesses().length > 0, 120_000)
    const orphaned = vmmProcesses()
    await daemon!.kill()
    await running.result
    // The VMM runs on, detached from the dead daemon, with its directory and no row.
    expect(orphaned.every((pid) => fs.existsSync(`/proc/${pid}`))).toBe(true)
    expect(vmDirs()).toHaveLength(1)
    daemon = await startBangerDaemon(state)
    await until("reconcile", () => vmmProcesses().length === 0 && vmDirs().length === 0, 30_000)
    expect(vmRows()).toEqual([])
    expect(await json<Array<unknown>>("vm", "list")).toEqual([])
  }, 300_000)
})
