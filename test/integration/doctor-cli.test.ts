/**
 * `banger doctor` for real on this machine, through the real CLI: with no daemon (it must run the
 * checks itself and start none) and with one (the daemon runs them). What the test asserts about
 * the host it establishes itself, independently of banger.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { type CliResult, expectOneLineError, runBanger, withBangerDaemon } from "../support/banger-cli.js"
import { answers } from "../support/socket-answers.js"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "doctor-cli-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const KERNEL_NAME = "doctor-default-kernel"
const catalog = path.join(dir, "catalog.json")
fs.writeFileSync(
  catalog,
  JSON.stringify({
    kernels: [
      { name: KERNEL_NAME, ref: "registry.test/kernels/cloud:6.1", arch: "amd64", description: "k", default: true }
    ],
    images: [
      { name: "doctor-dev", ref: "registry.test/images/dev:1", kernel: KERNEL_NAME, description: "i", default: true }
    ]
  })
)
const corruptCatalog = path.join(dir, "corrupt.json")
fs.writeFileSync(corruptCatalog, "{ not json")

interface Check {
  readonly name: string
  readonly status: "ok" | "warn" | "fail"
  readonly detail: string
  readonly fix?: string
}

const parseJson = (result: CliResult) => {
  const checks = JSON.parse(result.stdout) as ReadonlyArray<Check>
  return Object.fromEntries(checks.map((check) => [check.name, check])) as Record<string, Check>
}

/** Both renderings of one run agree, and the exit status says whether a line says `fail`. */
const expectConsistent = (text: CliResult, json: CliResult) => {
  const checks = parseJson(json)
  // Free space moves between the two runs (other processes write), and a broken connection may
  // break at another step: compared without those details.
  const masked = (line: string) => line.replace(/\d+\.\d GiB/g, "N GiB").replace(/(doctor\.run failed: ).*/, "$1…")
  const lines = text.stdout.trimEnd().split("\n").map(masked)
  const statusLines = lines.filter((line) => !line.startsWith(" "))
  expect(statusLines).toHaveLength(Object.keys(checks).length)
  for (const check of Object.values(checks)) {
    expect(lines).toContain(masked(`${check.status.padEnd(6)}${check.name}: ${check.detail}`))
    if (check.status === "ok") expect(check.fix).toBeUndefined()
    else expect(lines).toContain(`      fix: ${check.fix}`)
  }
  const failed = statusLines.some((line) => line.startsWith("fail  "))
  expect(text.code, text.stderr).toBe(failed ? 1 : 0)
  expect(json.code, json.stderr).toBe(failed ? 1 : 0)
  expect(text.stderr).toBe("")
  return checks
}

const doctor = async (state: string, extra: ReadonlyArray<string> = []) => {
  // Auto-start left on: doctor must not start a daemon even when it may.
  const env = { BANGER_NO_AUTOSTART: undefined }
  const text = await runBanger(["--state-dir", state, ...extra, "doctor"], { env })
  const json = await runBanger(["--state-dir", state, ...extra, "doctor", "--json"], { env })
  return expectConsistent(text, json)
}

const onPath = (command: string) =>
  (process.env.PATH ?? "").split(":").some((entry) => fs.existsSync(path.join(entry, command)))

const opensReadWrite = (file: string) => {
  try {
    fs.closeSync(fs.openSync(file, "r+"))
    return true
  } catch {
    return false
  }
}

/** The facts of this host that hold whoever runs the checks. */
const expectHostFacts = (checks: Record<string, Check>) => {
  expect(checks.e2fsprogs?.status).toBe(["e2fsck", "debugfs", "resize2fs"].every(onPath) ? "ok" : "fail")
  expect(checks.zstd?.status).toBe(onPath("zstd") ? "ok" : "fail")
  expect(checks.qemu?.status).toBe(onPath("qemu-system-x86_64") ? "ok" : expect.stringMatching(/warn|fail/))
  const firecracker = process.env.FIRECRACKER_BIN || onPath("firecracker")
  if (!firecracker) expect(checks.firecracker?.status).toBe(onPath("qemu-system-x86_64") ? "warn" : "fail")
  expect(checks.kvm?.status).toBe(opensReadWrite("/dev/kvm") ? "ok" : "warn")
  const forward = fs.readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim()
  // Off is fine: the daemon turns it on while VMs with a network run.
  expect(checks["net.ipv4.ip_forward"]).toMatchObject({
    status: "ok",
    detail: expect.stringMatching(new RegExp(`^is ${forward}\\b`))
  })
  expect(checks.tun?.status).toBe(opensReadWrite("/dev/net/tun") ? "ok" : "warn")
  const busybox = spawnSync("file", ["-L", "/bin/busybox"], { encoding: "utf8" }).stdout
  expect(checks.busybox?.status).toBe(/statically linked|static-pie linked/.test(busybox) ? "ok" : "fail")
  expect(checks.catalog).toMatchObject({ status: "ok", detail: `${catalog}: 1 kernels, 1 images` })
  expect(checks["default-image"]).toMatchObject({
    status: "ok",
    detail: "doctor-dev (registry.test/images/dev:1) is pulled on first use"
  })
}

describe("banger doctor (real CLI, this host)", () => {
  it("with no daemon: runs the checks itself, reports the daemon as not running, starts none", async () => {
    const state = path.join(dir, "fresh-state")
    const checks = await doctor(state, ["--catalog", catalog])
    expectHostFacts(checks)
    expect(checks.daemon).toMatchObject({ status: "warn", detail: "not running (it starts on first use)" })
    expect(checks["state-dir"]).toMatchObject({ status: "ok", detail: expect.stringMatching(/does not exist yet/) })
    expect(checks["default-kernel"]?.detail).toMatch(/is pulled on first use/)
    // No daemon, no socket, no state dir: doctor wrote nothing.
    expect(fs.existsSync(state)).toBe(false)

    const broken = await doctor(state, ["--catalog", corruptCatalog])
    expect(broken.catalog).toMatchObject({ status: "fail", detail: expect.stringMatching(/not JSON/) })
    expect(fs.existsSync(state)).toBe(false)

    // A state database that is not one: the checks that read it fail and say why; it is left as it was.
    const damaged = path.join(dir, "damaged-state")
    fs.mkdirSync(damaged)
    fs.writeFileSync(path.join(damaged, "banger.db"), "this is not an SQLite database, not even close".repeat(100))
    const unreadable = await doctor(damaged, ["--catalog", catalog])
    expect(unreadable["default-kernel"]).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/state database error/),
      fix: expect.stringMatching(/banger\.db/)
    })
    expect(fs.readdirSync(damaged)).toEqual(["banger.db"])

    // A command that needs the daemon: the daemon cannot open the database, says why in one line
    // and exits; the database is not touched.
    const before = fs.readFileSync(path.join(damaged, "banger.db"))
    const listed = await runBanger(["--state-dir", damaged, "image", "list"], { env: { BANGER_NO_AUTOSTART: "" } })
    expectOneLineError(
      listed,
      /^banger: cannot use the banger daemon at \S+: the daemon it started exited \(code 1\): state database error: \S+banger\.db is not a usable SQLite database \(file is not a database\): move it aside to start with an empty state, or restore it from a backup \(log: \S+\)$/
    )
    expect(fs.readFileSync(path.join(damaged, "banger.db")).equals(before)).toBe(true)
    expect(await answers(path.join(damaged, "banger.sock"))).toBe(false)
  })

  it("with a daemon: the daemon runs the checks; then without it, the state database still shows what is local", async () => {
    const state = path.join(dir, "state")
    const kernelFile = fs.readdirSync("/boot").find((name) => name.startsWith("vmlinuz-"))
    expect(kernelFile, "a kernel in /boot").toBeDefined()
    await withBangerDaemon(state, async (daemon) => {
      const registered = await runBanger([
        "--state-dir",
        state,
        "kernel",
        "register",
        KERNEL_NAME,
        "--kernel",
        path.join("/boot", kernelFile!)
      ])
      expect(registered.code, registered.stderr).toBe(0)
      const checks = await doctor(state, ["--catalog", catalog])
      expectHostFacts(checks)
      expect(checks.daemon).toMatchObject({
        status: "ok",
        detail: `pid ${daemon.pid}, version 0.1.0, socket ${daemon.socket} (mode 0600)`
      })
      expect(checks["state-dir"]).toMatchObject({ status: "ok", detail: `${state} is writable` })
      expect(checks["default-kernel"]).toMatchObject({
        status: "ok",
        detail: `${KERNEL_NAME} is local (from local files, not registry.test/kernels/cloud:6.1)`
      })
    })
    const checks = await doctor(state, ["--catalog", catalog])
    expect(checks.daemon?.detail).toBe("not running (it starts on first use)")
    expect(checks["default-kernel"]).toMatchObject({
      status: "ok",
      detail: `${KERNEL_NAME} is local (from local files, not registry.test/kernels/cloud:6.1)`
    })
    expect(fs.existsSync(path.join(state, "banger.sock"))).toBe(false)
  })

  it("with something on the socket that does not serve banger: the checks run here and the daemon check says so", async () => {
    const state = path.join(dir, "impostor")
    fs.mkdirSync(state)
    const socket = path.join(state, "banger.sock")
    const server = net.createServer((connection) => connection.destroy())
    await new Promise<void>((resolve) => server.listen(socket, resolve))
    try {
      const checks = await doctor(state, ["--catalog", catalog])
      expectHostFacts(checks)
      expect(checks.daemon).toMatchObject({
        status: "warn",
        detail: expect.stringMatching(new RegExp(`^cannot use the daemon at ${socket}: doctor\\.run failed: `))
      })
      // Left alone: doctor replaces nothing and starts nothing.
      expect(fs.readdirSync(state)).toEqual(["banger.sock"])
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })
})
