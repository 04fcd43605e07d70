/**
 * bin/banger starts the daemon before it loads the CLI (src/daemon/early-start.ts): for a command
 * that needs one, exactly one daemon, which the CLI then uses; none for commands that need none,
 * and none left behind when the command fails to parse.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { type CliOptions, runBanger, startBangerDaemon } from "../support/banger-cli.js"

/** Auto-start on, unlike the other CLI tests. */
const autostart: CliOptions = { env: { BANGER_NO_AUTOSTART: undefined, BANGER_SOCKET: undefined }, timeoutMs: 60_000 }

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** The processes running `banger --state-dir <stateDir> daemon …`: ours, since the dir is a fresh temp dir. */
const daemonPids = (stateDir: string): Array<number> =>
  fs
    .readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      let argv: Array<string>
      try {
        argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")
      } catch {
        return false
      }
      const at = argv.indexOf("--state-dir")
      return at >= 0 && argv[at + 1] === stateDir && argv[at + 2] === "daemon"
    })
    .map(Number)

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const waitUntil = async (condition: () => boolean, what: string | (() => string), timeoutMs = 15_000) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === "string" ? what : what()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** A fresh state dir path (not created) whose daemons are stopped, by pid, after the test. */
const freshStateDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bge-"))
  const stateDir = path.join(dir, "state")
  cleanups.push(async () => {
    const pids = daemonPids(stateDir)
    for (const pid of pids) process.kill(pid, "SIGTERM")
    await waitUntil(() => pids.every((pid) => !alive(pid)), "the test's daemons to stop")
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return stateDir
}

const log = (stateDir: string) => {
  try {
    return fs.readFileSync(path.join(stateDir, "daemon.log"), "utf8")
  } catch {
    return undefined
  }
}

const servingLines = (text: string | undefined) => (text ?? "").split("\n").filter((l) => l.includes("serving"))

describe("bin/banger starts the daemon early", () => {
  it("a cold `image list` starts exactly one daemon, which the CLI uses and leaves running", async () => {
    const stateDir = freshStateDir()
    const result = await runBanger(["--state-dir", stateDir, "image", "list", "--json"], autostart)
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    expect(JSON.parse(result.stdout)).toEqual([])
    // Had the CLI not taken over the launcher's daemon, it would have started a second one (which
    // loses the state dir's lock and says so in the log), or stopped the first when it exited.
    const pids = daemonPids(stateDir)
    expect(pids).toHaveLength(1)
    expect(servingLines(log(stateDir))).toHaveLength(1)
    expect(log(stateDir)).not.toMatch(/already running|stopped/)
    // It keeps serving after the CLI is gone: the next command uses it.
    const again = await runBanger(["--state-dir", stateDir, "op", "list", "--json"], autostart)
    expect(again.code).toBe(0)
    expect(daemonPids(stateDir)).toEqual(pids)
    expect(servingLines(log(stateDir))).toHaveLength(1)
  })

  it("a relative --state-dir= is resolved against the caller's directory, as the CLI does", async () => {
    const stateDir = freshStateDir()
    const cwd = path.dirname(stateDir)
    const result = await runBanger(["--state-dir=state", "kernel", "list", "--json"], { ...autostart, cwd })
    expect(result.code).toBe(0)
    expect(daemonPids(stateDir)).toHaveLength(1)
    expect(log(stateDir)).not.toMatch(/already running|stopped/)
  })

  it("a relative BANGER_SOCKET is resolved against the caller's directory too", async () => {
    const stateDir = freshStateDir()
    const cwd = path.dirname(stateDir)
    const env = { ...autostart.env, BANGER_SOCKET: "banger.sock" }
    const result = await runBanger(["--state-dir", stateDir, "kernel", "list", "--json"], { ...autostart, env, cwd })
    expect(result.code).toBe(0)
    expect(daemonPids(stateDir)).toHaveLength(1)
    // The daemon serves the socket the caller named, and the next command finds it there.
    expect(fs.statSync(path.join(cwd, "banger.sock")).isSocket()).toBe(true)
    const again = await runBanger(["--state-dir", stateDir, "kernel", "list", "--json"], { ...autostart, env, cwd })
    expect(again.code).toBe(0)
    expect(daemonPids(stateDir)).toHaveLength(1)
  })

  it("help and version start no daemon and create no state dir", async () => {
    const stateDir = freshStateDir()
    // (`banger --state-dir DIR --help` is a usage error of the CLI's parser: the state dir comes from the env there.)
    const env = { ...autostart, env: { ...autostart.env, BANGER_STATE_DIR: stateDir } }
    for (const args of [["--help"], ["--version"], ["image", "list", "--help"], ["image", "pull", "-h"]]) {
      const result = await runBanger(args, env)
      expect(result.code, args.join(" ")).toBe(0)
    }
    for (const args of [
      ["image", "list", "--help"],
      ["image", "pull", "x", "--version"]
    ]) {
      const result = await runBanger(["--state-dir", stateDir, ...args], autostart)
      expect(result.code, args.join(" ")).toBe(0)
    }
    expect(fs.existsSync(stateDir)).toBe(false)
    expect(daemonPids(stateDir)).toEqual([])
  })

  it("a command line that fails to parse leaves no daemon behind", async () => {
    const stateDir = freshStateDir()
    for (const args of [
      ["image", "pull"],
      ["image", "list", "--no-such-option"]
    ]) {
      const result = await runBanger(["--state-dir", stateDir, ...args], autostart)
      expect(result.code, args.join(" ")).toBe(1)
      // The launcher did start one (it opened the log), and the CLI stopped it on its way out.
      expect(log(stateDir), args.join(" ")).toBeDefined()
      // Generous: on a loaded two-core CI machine a daemon still loading can take a while to stop.
      await waitUntil(
        () => daemonPids(stateDir).length === 0,
        () => `the unused daemon to stop; its log:\n${log(stateDir) ?? ""}`,
        45_000
      )
      fs.rmSync(stateDir, { recursive: true, force: true })
    }
  })

  it("with a daemon already serving the state dir, starts none", async () => {
    const stateDir = freshStateDir()
    const daemon = await startBangerDaemon(stateDir)
    cleanups.push(async () => {
      await daemon.stop()
    })
    const result = await runBanger(["--state-dir", stateDir, "image", "list", "--json"], autostart)
    expect(result.code).toBe(0)
    // That daemon logs to the test's pipe; only a started one writes daemon.log.
    expect(log(stateDir)).toBeUndefined()
    expect(daemonPids(stateDir)).toEqual([daemon.pid])
  })

  it("an unusable --state-dir: the CLI's own error, no daemon", async () => {
    const stateDir = freshStateDir()
    fs.writeFileSync(stateDir, "a file, not a directory")
    const result = await runBanger(["--state-dir", stateDir, "image", "list"], autostart)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`Expected path '${stateDir}' to be a directory`)
    expect(daemonPids(stateDir)).toEqual([])
  })

  it("BANGER_NO_AUTOSTART=1 starts none", async () => {
    const stateDir = freshStateDir()
    const result = await runBanger(["--state-dir", stateDir, "image", "list"], { timeoutMs: 60_000 })
    expect(result.stderr).toBe("banger: daemon not running (start it with: banger daemon)\n")
    expect(fs.existsSync(stateDir)).toBe(false)
  })
})
