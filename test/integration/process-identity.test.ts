/**
 * Leases and temp names name their process by pid + start time: a dead process that has not been
 * reaped yet (a zombie) and a pid now worn by an unrelated live process both count as gone.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { isIdentityAlive, ownProcessIdentity, readStartTime } from "../../src/layers/host/process-identity.js"
import { isLeased, LEASE_FILE, writeLease } from "../../src/pipelines/pull/lease.js"

const started: Array<number> = []
afterAll(() => {
  for (const pid of started) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {}
  }
})

const stateOf = (pid: number) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1")
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0]
}

const until = async (what: string, check: () => boolean) => {
  const deadline = Date.now() + 10_000
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * A child that dies while its parent never waits for it: `sh` starts it in the background, then
 * becomes `sleep`, which does not reap. Returns the child's pid and start time (read while alive).
 */
const zombie = async () => {
  const parent = spawn("sh", ["-c", "sleep 0.5 & echo $!; exec sleep 60"], { stdio: ["ignore", "pipe", "ignore"] })
  started.push(parent.pid!)
  const pid = await new Promise<number>((resolve) =>
    parent.stdout.once("data", (data) => resolve(Number(String(data))))
  )
  const startTime = readStartTime(pid)
  expect(startTime).toBeDefined()
  await until("the child to become a zombie", () => stateOf(pid) === "Z")
  return { pid, startTime: startTime! }
}

const leased = (content: string) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const fsys = yield* FileSystem.FileSystem
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "banger-lease-"))
      fs.writeFileSync(path.join(dir, LEASE_FILE), content)
      const result = yield* isLeased(fsys, dir)
      fs.rmSync(dir, { recursive: true, force: true })
      return result
    }).pipe(Effect.provide(NodeFileSystem.layer))
  )

describe("process identity: pid plus start time", () => {
  it("a killed but unreaped child is dead, though kill(pid, 0) still succeeds on it", async () => {
    const { pid, startTime } = await zombie()
    // The trap a bare pid falls into: signal 0 reaches a zombie.
    expect(() => process.kill(pid, 0)).not.toThrow()
    expect(readStartTime(pid)).toBeUndefined()
    expect(isIdentityAlive(`${pid}.${startTime}`)).toBe(false)
    expect(isIdentityAlive(String(pid))).toBe(false)
    expect(await leased(`${pid}.${startTime}`)).toBe(false)
  })

  it("a lease naming a live, unrelated process (same pid, other start time) is not held", async () => {
    const other = spawn("sleep", ["60"], { stdio: "ignore" })
    started.push(other.pid!)
    await until("sleep to start", () => readStartTime(other.pid!) !== undefined)
    const real = readStartTime(other.pid!)!
    expect(isIdentityAlive(`${other.pid}.${real}`)).toBe(true)
    expect(isIdentityAlive(`${other.pid}.${Number(real) + 1}`)).toBe(false)
    expect(await leased(`${other.pid}.${Number(real) + 1}`)).toBe(false)
    expect(await leased(`${other.pid}.${real}`)).toBe(true)
    // pid 1 runs, but never as a banger that wrote a lease at start time 1.
    expect(isIdentityAlive("1.1")).toBe(false)
  })

  it("this process's own lease is held, and garbage is not a lease", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "banger-lease-"))
    try {
      const held = await Effect.runPromise(
        Effect.gen(function* () {
          const fsys = yield* FileSystem.FileSystem
          yield* writeLease(fsys, dir)
          return yield* isLeased(fsys, dir)
        }).pipe(Effect.provide(NodeFileSystem.layer))
      )
      expect(held).toBe(true)
      expect(fs.readFileSync(path.join(dir, LEASE_FILE), "utf8")).toBe(ownProcessIdentity())
      expect(ownProcessIdentity()).toMatch(new RegExp(`^${process.pid}\\.\\d+$`))
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
    for (const garbage of ["", "abc", "-1", "0", "12.x"]) expect(await leased(garbage)).toBe(false)
  })
})
