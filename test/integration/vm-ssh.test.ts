/**
 * ssh into a real VM end to end: the real CLI and daemon inside a network namespace this test makes
 * (and removes), a Debian image with systemd, sshd and tmux (the golden package list) booted under
 * QEMU TCG with a tap on banger's network. One VM for everything: `vm ssh` runs commands with
 * stdin, stdout and exit status passed through, the user's `--ssh-key` and `vm show`'s pasted
 * command line get in, sshd offers only the host key banger made, `vm attach` lands in tmux, a
 * tampered host key is refused, stop → start and a daemon killed -9 leave ssh working, and delete
 * leaves none of the VM's ssh files. Then an image booted by banger's own init, whose sshd it starts.
 */
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SshTarget } from "../../src/domain/ssh.js"
import { sshArgv } from "../../src/layers/ssh/ssh-argv.js"
import {
  bangerBin,
  type CliOptions,
  errorLines,
  expectOneLineError,
  runBanger,
  startBanger,
  startBangerDaemon
} from "../support/banger-cli.js"
import { debianRootfs } from "../support/debian-rootfs.js"
import { buildLayer } from "../support/layers.js"
import { createNetns, type TestNetns } from "../support/netns.js"
import { findCloudKernel } from "../support/qemu.js"
import { pushImage, startRegistry, type TestRegistry } from "../support/registry.js"
import { layerFromDirectory, whiteout } from "../support/rootfs-layers.js"

let ns: TestNetns | undefined
let netns: string
let registry: TestRegistry | undefined
let work: string
let state: string
let daemon: Awaited<ReturnType<typeof startBangerDaemon>> | undefined
let userKey: string
let vmDir: string
const timings: Record<string, number> = {}

const inNs = (): CliOptions => ({ netns, timeoutMs: 600_000 })
const banger = (args: ReadonlyArray<string>, options: CliOptions = {}) =>
  runBanger(["--state-dir", state, ...args], { ...inNs(), ...options })
const ok = async (args: ReadonlyArray<string>, options: CliOptions = {}) => {
  const result = await banger(args, options)
  if (result.code !== 0) throw new Error(`banger ${args.join(" ")} exited ${result.code}:\n${result.stderr}`)
  return result.stdout
}
const ssh = (...command: Array<string>) => banger(["vm", "ssh", "dev", "--", ...command])

/** QEMU processes of this test's state dir, by pid (for the cleanup of a failed run only). */
const vmmPids = () =>
  fs
    .readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")
        return argv.startsWith("qemu-system") && argv.includes(path.join(state, "vms"))
      } catch {
        return false
      }
    })
    .map(Number)

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-vm-ssh-"))
  state = path.join(work, "state")
  ns = createNetns()
  netns = ns.name
  userKey = path.join(work, "user_key")
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "me@laptop", "-f", userKey])

  const kernel = await findCloudKernel()
  registry = await startRegistry()
  const rootfs = await debianRootfs()
  const base = await layerFromDirectory(rootfs, { output: path.join(work, "debian.tar.gz"), level: 1 })
  await pushImage(registry, "debian-golden", "1", { layers: [base] })
  // The same without /sbin/init: banger's built-in init boots it, and starts its sshd.
  const noInit = await buildLayer([whiteout("usr/sbin/init")])
  await pushImage(registry, "debian-noinit", "1", {
    layers: [base, noInit],
    // A console shell would read the (empty) console and exit, powering the VM off.
    config: { config: { Cmd: ["sleep", "infinity"] } }
  })
  // The registry listens on the host's loopback, which the namespace cannot reach: this daemon
  // pulls from out here, and stops before the namespace's own daemon takes the state dir over.
  const puller = await startBangerDaemon(state)
  const boot = [
    "--kernel",
    kernel.kernel,
    "--initrd",
    kernel.initrd,
    "--modules",
    path.join("/lib/modules", kernel.version)
  ]
  for (const [image, name] of [
    ["debian-golden", "golden"],
    ["debian-noinit", "noinit"]
  ]) {
    const pulled = await runBanger(
      ["--state-dir", state, "image", "pull", `${registry.host}/${image}:1`, "--name", name, ...boot],
      { timeoutMs: 900_000 }
    )
    if (pulled.code !== 0) {
      await puller.stop()
      throw new Error(`pull failed:\n${pulled.stderr}`)
    }
  }
  await puller.stop()
  await registry.stop()
  registry = undefined
  daemon = await startBangerDaemon(state, { netns })
}, 1_800_000)

afterAll(async () => {
  if (state) for (const pid of vmmPids()) process.kill(pid, "SIGKILL")
  await daemon?.stop()
  await registry?.stop()
  ns?.remove()
  if (work) fs.rmSync(work, { recursive: true, force: true })
  if (Object.keys(timings).length > 0) console.log(`vm-ssh timings (ms): ${JSON.stringify(timings)}`)
})

describe("banger vm ssh / attach (QEMU TCG, in a network namespace)", () => {
  it("create waits for sshd: the first vm ssh right after it gets in", async () => {
    const started = Date.now()
    const create = startBanger(
      [
        "--state-dir",
        state,
        "vm",
        "create",
        "dev",
        "--image",
        "golden",
        "--accel",
        "tcg",
        "--memory",
        "1024",
        "--ssh-key",
        `${userKey}.pub`
      ],
      inNs()
    )
    // The non-TTY progress lines, timed as they appear.
    const seen = new Map<string, number>()
    const watch = setInterval(() => {
      for (const line of create.output().stderr.split("\n")) if (!seen.has(line)) seen.set(line, Date.now() - started)
    }, 50)
    const result = await create.result
    clearInterval(watch)
    timings.createToSshReady = Date.now() - started
    if (result.code !== 0) throw new Error(`vm create exited ${result.code}:\n${result.stderr}`)
    const at = (pattern: RegExp) => [...seen].find(([line]) => pattern.test(line))?.[1]
    timings.createToBoot = at(/booting/) ?? -1
    timings.createToReadyWait = at(/waiting for the guest to be ready/) ?? -1
    timings.createToSshWait = at(/waiting for the guest's sshd/) ?? -1
    expect(timings.createToSshWait).toBeGreaterThan(0)

    const first = await ssh("cat", "/etc/hostname")
    expect(first.stderr).toBe("")
    expect(first.stdout).toBe("dev\n")
    expect(first.code).toBe(0)
    const shown = JSON.parse(await ok(["vm", "show", "dev", "--json"])) as { dir: string }
    vmDir = shown.dir
  })

  it("passes exit status, stdout and stdin through; --user logs in as another account", async () => {
    expect((await ssh("false")).code).toBe(1)
    expect((await ssh("exit 7")).code).toBe(7)
    const echoed = await banger(["vm", "ssh", "dev", "--", "tr", "a-z", "A-Z"], { stdin: "through ssh\n" })
    expect([echoed.code, echoed.stdout]).toEqual([0, "THROUGH SSH\n"])
    const who = await ssh("id", "-un")
    expect(who.stdout).toBe("root\n")
    // --user: an account given root's keys (banger gives only root one) is logged into as itself.
    const setup = await ssh(
      "useradd -m dev && install -d -o dev -m 700 ~dev/.ssh && install -o dev -m 600 ~/.ssh/authorized_keys ~dev/.ssh/"
    )
    expect(setup.code, setup.stderr).toBe(0)
    const asDev = await banger(["vm", "ssh", "dev", "--user", "dev", "--", "id", "-un"])
    expect([asDev.code, asDev.stdout]).toEqual([0, "dev\n"])
  })

  it("the user's --ssh-key gets in too, and vm show's command line works pasted into a shell", async () => {
    const shown = await ok(["vm", "show", "dev"])
    const line = shown
      .split("\n")
      .find((row) => row.startsWith("ssh:"))!
      .replace(/^ssh:\s+/, "")
    expect(line).toContain("StrictHostKeyChecking=yes")
    const pasted = execFileSync("ip", ["netns", "exec", netns, "sh", "-c", `${line} cat /etc/hostname`], {
      encoding: "utf8"
    })
    expect(pasted).toBe("dev\n")
    // The same target with the user's own key instead of banger's.
    const target = sshTargetFromShow(line)
    const mine = execFileSync(
      "ip",
      [
        "netns",
        "exec",
        netns,
        "ssh",
        ...sshArgv(new SshTarget({ ...target, identityFile: userKey }), { command: ["hostname"] })
      ],
      { encoding: "utf8" }
    )
    expect(mine).toBe("dev\n")
    // What sshd offers is banger's key for this VM and nothing else (not the image's own keys).
    expect(hostKeysOffered(target.address)).toEqual([
      fs.readFileSync(path.join(vmDir, "known_hosts"), "utf8").split(" ").slice(1).join(" ").trim()
    ])
  })

  it("vm attach lands in the guest's tmux session 'banger', made once and rejoined", async () => {
    const attach = () =>
      new Promise<string>((resolve, reject) => {
        // script gives ssh -t the terminal a person would have; the typed command detaches.
        const child = spawn(
          "ip",
          ["netns", "exec", netns, "script", "-qec", `${bangerBin} --state-dir ${state} vm attach dev`, "/dev/null"],
          { env: { ...process.env, TERM: "xterm", BANGER_NO_AUTOSTART: "1" }, stdio: ["pipe", "pipe", "pipe"] }
        )
        let output = ""
        child.stdout.on("data", (chunk: Buffer) => {
          output += chunk.toString()
        })
        const timer = setTimeout(() => {
          child.kill("SIGKILL")
          reject(new Error(`vm attach did not end:\n${output}`))
        }, 120_000)
        setTimeout(() => child.stdin.write("tmux detach-client\r"), 8_000)
        child.on("close", () => {
          clearTimeout(timer)
          resolve(output)
        })
      })
    const first = await attach()
    expect(first).toMatch(/detached/)
    const sessions = await ssh("tmux", "list-sessions", "-F", "'#{session_name}'")
    expect(sessions.stdout).toBe("banger\n")
    await attach()
    expect((await ssh("tmux", "list-sessions", "-F", "'#{session_name}'")).stdout).toBe("banger\n")
  })

  it("a host key other than the VM's is refused: no trust on first use, no fallback", async () => {
    const knownHosts = path.join(vmDir, "known_hosts")
    const original = fs.readFileSync(knownHosts, "utf8")
    const other = path.join(work, "other_host_key")
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other])
    const [alias] = original.split(" ")
    const otherKey = fs.readFileSync(`${other}.pub`, "utf8").split(" ").slice(0, 2).join(" ")
    try {
      fs.writeFileSync(knownHosts, `${alias} ${otherKey}\n`)
      const changed = await ssh("true")
      expect(changed.code).toBe(255)
      expect(changed.stderr).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/)
      fs.writeFileSync(knownHosts, "")
      const unknown = await ssh("true")
      expect(unknown.code).toBe(255)
      expect(unknown.stderr).toContain("Host key verification failed")
      // Nothing was learned on the way.
      expect(fs.readFileSync(knownHosts, "utf8")).toBe("")
    } finally {
      fs.writeFileSync(knownHosts, original)
    }
    expect((await ssh("true")).code).toBe(0)
  })

  it("stop refuses ssh with one line; start waits for sshd again", async () => {
    await ok(["vm", "stop", "dev"])
    expectOneLineError(await ssh("true"), /^banger: cannot ssh into VM "dev": it is stopped \(start it with/)
    const started = Date.now()
    await ok(["vm", "start", "dev"])
    timings.startToSshReady = Date.now() - started
    const again = await ssh("cat", "/etc/hostname")
    expect([again.code, again.stdout]).toEqual([0, "dev\n"])
  })

  it("a daemon killed -9 under the running VM: the next daemon's vm ssh still gets in", async () => {
    await daemon!.kill()
    daemon = await startBangerDaemon(state, { netns })
    const after = await ssh("cat", "/etc/hostname")
    expect([after.code, after.stdout]).toEqual([0, "dev\n"])
  })

  it("delete takes the VM's host key and known_hosts with it; banger's own key stays", async () => {
    await ok(["vm", "delete", "dev", "--force"])
    expect(fs.existsSync(vmDir)).toBe(false)
    expectOneLineError(await ssh("true"), /VM "dev" not found/)
    expect(fs.readdirSync(path.join(state, "ssh")).sort()).toEqual(["id_ed25519", "id_ed25519.pub"])
    expect(errorLines((await banger(["vm", "list"])).stderr)).toEqual([])
  })

  it("an image without an init of its own: banger's init starts sshd, with banger's host key", async () => {
    const started = Date.now()
    await ok(["vm", "create", "plain", "--image", "noinit", "--accel", "tcg", "--memory", "512"])
    timings.builtinInitCreateToSshReady = Date.now() - started
    const result = await banger(["vm", "ssh", "plain", "--", "cat", "/etc/hostname"])
    expect([result.code, result.stdout]).toEqual([0, "plain\n"])
    const shown = JSON.parse(await ok(["vm", "show", "plain", "--json"])) as {
      dir: string
      init: string | null
      network: { guestAddress: string }
    }
    expect(shown.init).toBe("/.banger/init")
    const filed = fs.readFileSync(path.join(shown.dir, "known_hosts"), "utf8").split(" ").slice(1).join(" ").trim()
    expect(hostKeysOffered(shown.network.guestAddress)).toEqual([filed])
    await ok(["vm", "delete", "plain", "--force"])
  })
})

/** Every host key the guest's sshd offers, `type base64`, as ssh-keyscan reads them. */
const hostKeysOffered = (address: string) =>
  execFileSync("ip", ["netns", "exec", netns, "ssh-keyscan", "-T", "20", address], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"]
  })
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => line.split(" ").slice(1).join(" "))
    .sort()

/** The SshTarget a `vm show` line describes (the test swaps in another key). */
const sshTargetFromShow = (line: string) => {
  const option = (name: string) => new RegExp(`${name}=(\\S+)`).exec(line)![1]!
  return new SshTarget({
    name: "dev",
    address: line.split(" ").at(-1)!,
    port: 22,
    identityFile: /-i (\S+)/.exec(line)![1]!,
    knownHostsFile: option("UserKnownHostsFile"),
    hostKeyAlias: option("HostKeyAlias"),
    running: true
  })
}
