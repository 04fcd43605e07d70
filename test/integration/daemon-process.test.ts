import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option } from "effect"
import { DaemonSocket, pullViaDaemon } from "../../src/cli/daemon-client.js"
import { DAEMON_MALLOC_ENV, DAEMON_NODE_FLAGS } from "../../src/daemon/node-flags.js"
import { BangerClient } from "../../src/rpc/client.js"
import type { OperationStatus } from "../../src/rpc/schemas.js"
import { connect, listDir, tempDir, writeKernel } from "../support/daemon-harness.js"
import { cliBundle, runCli, startFixtureDaemon, startProcess, waitFor } from "../support/daemon-process.js"

/** A state dir and socket path under a fresh temp dir. */
const setup = Effect.gen(function* () {
  const dir = yield* tempDir()
  const stateDir = path.join(dir, "state")
  return { dir, stateDir, socket: path.join(stateDir, "banger.sock"), kernel: writeKernel(dir) }
})

const cliEnv = (socket: string) => ({ BANGER_SOCKET: socket, BANGER_NO_AUTOSTART: "1" })

/** Leaves a socket file nobody listens on, as a daemon killed with -9 does. */
const leaveStaleSocket = (socket: string) => {
  fs.mkdirSync(path.dirname(socket), { recursive: true })
  const result = spawnSync(process.execPath, [
    "-e",
    `require("net").createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, "SIGKILL"))`
  ])
  expect(result.signal).toBe("SIGKILL")
  expect(fs.lstatSync(socket).isSocket()).toBe(true)
}

const waitForProgress = (client: BangerClient["Type"], id: string) =>
  Effect.gen(function* () {
    const deadline = Date.now() + 15_000
    while (true) {
      const status: OperationStatus = yield* client.op.status({ id })
      if (status.state !== "running") return yield* Effect.dieMessage(`operation ended early: ${status.state}`)
      if (status.stage === "fetch" && status.progress.bytesDone > 0) return status
      if (Date.now() > deadline) return yield* Effect.dieMessage("no download progress")
      yield* Effect.sleep("20 millis")
    }
  })

const stagingDirs = (stateDir: string) => listDir(path.join(stateDir, "images")).filter((n) => n.endsWith(".staging"))

describe("daemon process", () => {
  it.live("pull through a live daemon; op watch, status and list over the CLI", () =>
    Effect.gen(function* () {
      const { stateDir, socket, kernel } = yield* setup
      yield* startFixtureDaemon({ stateDir, socket, steps: 50, stepMs: 40 })
      const client = yield* connect(socket)
      const begun = yield* client.image.pull({ reference: "debian:bookworm", kernel: { _tag: "Paths", kernel } })
      expect(begun.state).toBe("running")
      expect(begun.target).toBe("debian-bookworm")

      const watch = yield* runCli(["--state-dir", stateDir, "op", "watch", begun.id, "--json"], cliEnv(socket))
      expect(watch.code).toBe(0)
      const updates = watch.stdout
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as OperationStatus)
      expect(updates.length).toBeGreaterThan(2)
      expect(updates.at(-1)!.state).toBe("succeeded")
      expect(updates.at(-1)!.progress.bytesDone).toBe(2000)
      // Progress only grows along the watch.
      const done = updates.map((update) => update.progress.bytesDone)
      expect([...done].sort((a, b) => a - b)).toEqual(done)

      const status = yield* runCli(["--state-dir", stateDir, "op", "status", begun.id, "--json"], cliEnv(socket))
      expect(JSON.parse(status.stdout)).toMatchObject({
        id: begun.id,
        state: "succeeded",
        result: { name: "debian-bookworm" }
      })
      const human = yield* runCli(["--state-dir", stateDir, "op", "list"], cliEnv(socket))
      expect(human.stdout).toMatch(new RegExp(`${begun.id}\\s+image.pull\\s+debian-bookworm\\s+succeeded`))
      expect((yield* client.image.list()).map((image) => image.name)).toEqual(["debian-bookworm"])
    }).pipe(Effect.scoped)
  )

  it.live("op cancel mid-download: rollback leaves no staging dir and no row; state cancelled", () =>
    Effect.gen(function* () {
      const { stateDir, socket, kernel } = yield* setup
      yield* startFixtureDaemon({ stateDir, socket, steps: 200, stepMs: 20 })
      const client = yield* connect(socket)
      const begun = yield* client.image.pull({ reference: "debian", kernel: { _tag: "Paths", kernel } })
      yield* waitForProgress(client, begun.id)
      expect(stagingDirs(stateDir)).toHaveLength(1)

      const cancel = yield* runCli(["--state-dir", stateDir, "op", "cancel", begun.id, "--json"], cliEnv(socket))
      expect(cancel.code).toBe(0)
      expect(JSON.parse(cancel.stdout)).toMatchObject({ state: "cancelled", error: { _tag: "OperationCancelled" } })
      expect(listDir(path.join(stateDir, "images"))).toEqual([])
      expect(listDir(path.join(stateDir, "tmp"))).toEqual([])
      expect(yield* client.image.list()).toEqual([])
      // The name is free again at once.
      const again = yield* client.image.pull({ reference: "debian", kernel: { _tag: "Paths", kernel } })
      expect(again.target).toBe("debian-latest")
      yield* client.op.cancel({ id: again.id })
    }).pipe(Effect.scoped)
  )

  it.live("Ctrl-C of a following pull cancels the operation and waits for its rollback", () =>
    Effect.gen(function* () {
      const { stateDir, socket, kernel } = yield* setup
      yield* startFixtureDaemon({ stateDir, socket, steps: 200, stepMs: 20 })
      const client = yield* connect(socket)
      const layer = Layer.merge(BangerClient.layer({ socket }), Layer.succeed(DaemonSocket, socket))
      const follow = yield* Effect.fork(
        pullViaDaemon({ reference: "debian", kernel: { _tag: "Paths", kernel } }, { detach: false }).pipe(
          Effect.provide(layer)
        )
      )
      const id = yield* Effect.gen(function* () {
        while (true) {
          const running = (yield* client.op.list()).find((op) => op.state === "running")
          if (running && running.progress.bytesDone > 0) return running.id
          yield* Effect.sleep("20 millis")
        }
      }).pipe(Effect.timeout("15 seconds"))
      yield* Fiber.interrupt(follow)
      // The interrupt returns after the cancel answered, i.e. after the rollback.
      expect((yield* client.op.status({ id })).state).toBe("cancelled")
      expect(listDir(path.join(stateDir, "images"))).toEqual([])
    }).pipe(Effect.scoped)
  )

  it.live("kill -9 mid-pull: the next daemon removes the leftovers and marks the operation failed", () =>
    Effect.gen(function* () {
      const { stateDir, socket, kernel } = yield* setup
      const first = yield* startFixtureDaemon({ stateDir, socket, steps: 200, stepMs: 20 })
      const client = yield* connect(socket)
      const begun = yield* client.image.pull({ reference: "debian", kernel: { _tag: "Paths", kernel } })
      yield* waitForProgress(client, begun.id)
      first.child.kill("SIGKILL")
      expect(yield* Effect.promise(() => first.exited)).toBe(null)
      expect(stagingDirs(stateDir)).toHaveLength(1)
      expect(fs.existsSync(socket)).toBe(true)

      yield* startFixtureDaemon({ stateDir, socket })
      const next = yield* connect(socket)
      const status = yield* next.op.status({ id: begun.id })
      expect(status.state).toBe("failed")
      expect(status.error?._tag).toBe("OperationFailed")
      expect(status.endedAt).not.toBeNull()
      expect(listDir(path.join(stateDir, "images"))).toEqual([])
      expect(listDir(path.join(stateDir, "tmp"))).toEqual([])
      expect(yield* next.image.list()).toEqual([])
    }).pipe(Effect.scoped)
  )

  it.live("a daemon dying under a watching CLI fails the CLI promptly instead of hanging it", () =>
    Effect.gen(function* () {
      const { stateDir, socket, kernel } = yield* setup
      const daemon = yield* startFixtureDaemon({ stateDir, socket, steps: 500, stepMs: 20 })
      const client = yield* connect(socket)
      const begun = yield* client.image.pull({ reference: "debian", kernel: { _tag: "Paths", kernel } })
      const watch = yield* startProcess(cliBundle(), ["--state-dir", stateDir, "op", "watch", begun.id], cliEnv(socket))
      // The plain progress renderer prints the stage once the watch delivers it.
      yield* waitFor(() => watch.output().includes("fetch"), "the CLI to follow the operation", watch)
      daemon.child.kill("SIGKILL")
      const killedAt = Date.now()
      expect(yield* Effect.promise(() => watch.exited)).toBe(1)
      expect(watch.output()).toContain(`banger: cannot use the banger daemon at ${socket}: lost the connection`)
      expect(Date.now() - killedAt).toBeLessThan(10_000)
    }).pipe(Effect.scoped)
  )

  it.live("SIGTERM mid-pull: rollback, socket removed, exit 0; the operation is recorded failed", () =>
    Effect.gen(function* () {
      const { stateDir, socket, kernel } = yield* setup
      const first = yield* startFixtureDaemon({ stateDir, socket, steps: 200, stepMs: 20 })
      const client = yield* connect(socket)
      const begun = yield* client.image.pull({ reference: "debian", kernel: { _tag: "Paths", kernel } })
      yield* waitForProgress(client, begun.id)
      first.child.kill("SIGTERM")
      expect(yield* Effect.promise(() => first.exited)).toBe(0)
      expect(fs.existsSync(socket)).toBe(false)
      expect(listDir(path.join(stateDir, "images"))).toEqual([])

      yield* startFixtureDaemon({ stateDir, socket })
      const status = yield* (yield* connect(socket)).op.status({ id: begun.id })
      expect(status.state).toBe("failed")
      expect(status.error?.message).toContain("daemon stopped")
    }).pipe(Effect.scoped)
  )

  it.live("a second daemon for the same state dir is refused with a clear message", () =>
    Effect.gen(function* () {
      const { stateDir, socket } = yield* setup
      yield* startFixtureDaemon({ stateDir, socket })
      const second = yield* runCli(["--state-dir", stateDir, "daemon", "--socket", path.join(stateDir, "other.sock")])
      expect(second.code).toBe(1)
      expect(second.stderr).toContain(`another banger daemon is already running for ${stateDir}`)
      // Another state dir's daemon may not take over a live socket either.
      const elsewhere = yield* runCli(["--state-dir", `${stateDir}-2`, "daemon", "--socket", socket])
      expect(elsewhere.code).toBe(1)
      expect(elsewhere.stderr).toContain(`another banger daemon is already listening on ${socket}`)
      expect(fs.existsSync(socket)).toBe(true)
    }).pipe(Effect.scoped)
  )

  it.live("a stale socket from a crash is replaced on start", () =>
    Effect.gen(function* () {
      const { stateDir, socket } = yield* setup
      leaveStaleSocket(socket)
      const daemon = yield* startFixtureDaemon({ stateDir, socket })
      yield* waitFor(() => daemon.output().includes("removed stale socket"), "stale socket log", daemon)
      expect(yield* (yield* connect(socket)).image.list()).toEqual([])
    }).pipe(Effect.scoped)
  )

  it.live("the socket is 0600; --group makes it 0660 for that group", () =>
    Effect.gen(function* () {
      const { stateDir, socket } = yield* setup
      yield* startFixtureDaemon({ stateDir, socket })
      expect(fs.statSync(socket).mode & 0o777).toBe(0o600)
      expect(fs.statSync(socket).uid).toBe(process.getuid!())

      const groupSocket = path.join(stateDir, "g.sock")
      const gid = process.getuid!() === 0 ? 100 : process.getgid!()
      yield* startFixtureDaemon({ stateDir: `${stateDir}-g`, socket: groupSocket, group: String(gid) })
      expect(fs.statSync(groupSocket).mode & 0o777).toBe(0o660)
      expect(fs.statSync(groupSocket).gid).toBe(gid)
    }).pipe(Effect.scoped)
  )

  it.live("BANGER_NO_AUTOSTART: a missing or dead socket fails fast with the not-running message", () =>
    Effect.gen(function* () {
      const { stateDir, socket } = yield* setup
      const missing = yield* runCli(["--state-dir", stateDir, "op", "list"], cliEnv(socket))
      expect(missing.code).toBe(1)
      expect(missing.stderr).toBe("banger: daemon not running (start it with: banger daemon)\n")
      leaveStaleSocket(socket)
      const dead = yield* runCli(["--state-dir", stateDir, "op", "list"], cliEnv(socket))
      expect(dead.code).toBe(1)
      expect(dead.stderr).toBe("banger: daemon not running (start it with: banger daemon)\n")
      expect(dead.millis).toBeLessThan(10_000)
    }).pipe(Effect.scoped)
  )

  it.live("auto-start: with a dead socket in the way, the CLI starts a daemon and proceeds", () =>
    Effect.gen(function* () {
      const { stateDir, socket } = yield* setup
      leaveStaleSocket(socket)
      const started = yield* runCli(["--state-dir", stateDir, "op", "list", "--json"], { BANGER_SOCKET: socket })
      const info = yield* Effect.option((yield* connect(socket)).daemon.info())
      // Only ever kill the daemon this test started (by its pid, as it answered).
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => Option.map(info, (daemon) => process.kill(daemon.pid, "SIGTERM")))
      )
      expect(started.stderr).toBe("")
      expect(started.code).toBe(0)
      expect(JSON.parse(started.stdout)).toEqual([])
      expect(Option.getOrThrow(info).stateDir).toBe(stateDir)
      expect(fs.existsSync(path.join(stateDir, "daemon.log"))).toBe(true)
      // Started with the daemon's own V8 flags, before its entry file.
      const cmdline = fs.readFileSync(`/proc/${Option.getOrThrow(info).pid}/cmdline`, "utf8").split("\0")
      expect(cmdline.slice(1, 1 + DAEMON_NODE_FLAGS.length)).toEqual(DAEMON_NODE_FLAGS)
      // And with its malloc settings in its environment.
      const pid = Option.getOrThrow(info).pid
      const environ = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")
      for (const [name, value] of Object.entries(DAEMON_MALLOC_ENV)) expect(environ).toContain(`${name}=${value}`)
      // The next command uses the running daemon instead of starting another.
      const again = yield* runCli(["--state-dir", stateDir, "op", "list", "--json"], { BANGER_SOCKET: socket })
      expect(again.code).toBe(0)
      expect((yield* (yield* connect(socket)).daemon.info()).pid).toBe(Option.getOrThrow(info).pid)
    }).pipe(Effect.scoped)
  )
})
