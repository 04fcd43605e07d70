/**
 * VM networking end to end under QEMU TCG, inside a network namespace this test creates and
 * deletes: the daemon runs in it (so its taps, addresses and nftables table are made there), boots
 * a busybox image whose entrypoint fetches a file from a server on the host side of its tap and
 * then serves a page on a TCP port; two VMs get different addresses; a daemon killed -9 under a running
 * VM leaves it reachable; reconcile removes a stray tap of banger's naming and nothing else; delete
 * leaves no tap, table, lease or forwarding behind. Images are pulled by a daemon in the host's
 * namespace first (it reaches the test registry on loopback), which never makes a VM.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import Database from "better-sqlite3"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { BANGER_TAP } from "../../src/layers/network/network.js"
import { chooseResolvers } from "../../src/layers/network/resolvers.js"
import {
  type CliOptions,
  expectOneLineError,
  type RunningDaemon,
  runBanger,
  startBangerDaemon
} from "../support/banger-cli.js"
import { debianRootfs } from "../support/debian-rootfs.js"
import { buildLayer } from "../support/layers.js"
import { createNetns, type TestNetns } from "../support/netns.js"
import { findCloudKernel } from "../support/qemu.js"
import { pushImage, startRegistry, type TestRegistry } from "../support/registry.js"

import { layerFromDirectory } from "../support/rootfs-layers.js"
import { qemuProcessesNaming } from "../support/vm-processes.js"

const HTTP_PORT = 8080
const GUEST_PORT = 7000
// Chosen by the test, so the addresses below are known; the default pool is unit-tested.
const SUBNET = "10.213.0.0/24"

let registry: TestRegistry | undefined
let netns: TestNetns | undefined
let work: string
let state: string
let daemon: RunningDaemon | undefined
let httpd: ChildProcess | undefined

const inNetns = (): CliOptions => ({ netns: netns!.name, timeoutMs: 600_000 })
const banger = (...args: Array<string>) => runBanger(["--state-dir", state, ...args], inNetns())

const ok = async (...args: Array<string>) => {
  const result = await banger(...args)
  if (result.code !== 0) {
    throw new Error(`banger ${args.join(" ")} exited ${result.code}:\n${result.stderr}\n${result.stdout}`)
  }
  return result.stdout
}

const json = async <A = Record<string, unknown>>(...args: Array<string>): Promise<A> =>
  JSON.parse(await ok(...args, "--json")) as A

interface VmJson {
  readonly name: string
  readonly state: string
  readonly pid: number | null
  readonly network: { tap: string; mac: string; hostAddress: string; guestAddress: string; prefixLength: number } | null
}

const startDaemon = () => startBangerDaemon(state, { netns: netns!.name, extraArgs: ["--subnet", SUBNET] })

const leases = (): Array<{ base: number; vm_id: string }> => {
  const db = new Database(path.join(state, "banger.db"), { readonly: true })
  try {
    return db.prepare("SELECT base, vm_id FROM vm_addresses ORDER BY base").all() as Array<{
      base: number
      vm_id: string
    }>
  } finally {
    db.close()
  }
}

const bangerTaps = () => netns!.links().filter((link) => BANGER_TAP.test(link.ifname))

const until = async (
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 120_000,
  explain: () => Promise<string> = async () => ""
) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${(await explain()).slice(-4000)}`)
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
}

/** What the guest's web server answers, asked from the namespace (the host side of its tap). */
const askGuest = (address: string) =>
  netns!
    .attempt("busybox", "timeout", "10", "busybox", "wget", "-q", "-O", "-", `http://${address}:${GUEST_PORT}/name`)
    .stdout.trim()

const logs = (name: string) => ok("vm", "logs", name)

/** Live QEMU processes running VMs of this test's state dir. */
const vmmProcesses = () => qemuProcessesNaming(state)

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-vm-net-"))
  state = path.join(work, "state")
  const kernel = await findCloudKernel()
  registry = await startRegistry()

  // The guest fetches from the host side of its tap (its default gateway), prints its resolvers,
  // then serves its name on its port.
  const script = [
    "gw=$(busybox ip route | busybox awk '/^default/ {print $3}')",
    "echo \"guest eth0: $(busybox ip -o -f inet address show eth0 | busybox awk '{print $4}') via $gw\"",
    "busybox sed 's/^/guest resolv.conf: /' /etc/resolv.conf",
    "i=0",
    // busybox 1.35's wget -T crashes (static build): timeout bounds each attempt instead.
    `until body=$(busybox timeout 5 busybox wget -q -O - http://$gw:${HTTP_PORT}/hello); do i=$((i + 1)); [ $i -ge 30 ] && break; busybox sleep 1; done`,
    'echo "guest fetched: $body"',
    "busybox mkdir -p /www",
    'echo "pong from $(busybox hostname)" >/www/name',
    `exec busybox httpd -f -p ${GUEST_PORT} -h /www`
  ].join("\n")
  const app = await buildLayer([
    { type: "directory", name: "bin" },
    { type: "file", name: "bin/busybox", mode: 0o755, content: fs.readFileSync("/bin/busybox") },
    { type: "directory", name: "etc" }
  ])
  await pushImage(registry, "net-app", "1", {
    layers: [app],
    config: { config: { Entrypoint: ["/bin/busybox", "sh", "-c", script], Env: ["PATH=/bin"] } }
  })

  // Debian with systemd (the golden package list): its own init, eth0 through systemd-networkd.
  const debian = await layerFromDirectory(await debianRootfs(), { output: path.join(work, "debian.tar.gz"), level: 1 })
  await pushImage(registry, "debian-systemd", "1", { layers: [debian] })

  // Pulled by a daemon in the host's namespace, which reaches the registry on loopback.
  const pulling = await startBangerDaemon(state)
  for (const image of ["net-app", "debian-systemd"]) {
    const pulled = await runBanger(
      ["--state-dir", state, "image", "pull", `${registry.host}/${image}:1`, "--name", image].concat([
        "--kernel",
        kernel.kernel,
        "--initrd",
        kernel.initrd
      ]),
      { timeoutMs: 600_000 }
    )
    if (pulled.code !== 0) {
      await pulling.stop()
      throw new Error(`image pull failed:\n${pulled.stderr}`)
    }
  }
  await pulling.stop()

  netns = createNetns()
  const site = path.join(work, "site")
  fs.mkdirSync(site)
  fs.writeFileSync(path.join(site, "hello"), "hello from the host side")
  httpd = spawn("ip", ["netns", "exec", netns.name, "busybox", "httpd", "-f", "-p", String(HTTP_PORT), "-h", site], {
    stdio: "ignore"
  })
  daemon = await startDaemon()
}, 900_000)

afterAll(async () => {
  for (const pid of vmmProcesses()) process.kill(pid, "SIGKILL")
  await daemon?.stop()
  if (httpd?.pid !== undefined) process.kill(httpd.pid, "SIGKILL")
  netns?.remove()
  await registry?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

describe("VM networking (QEMU TCG, in a network namespace)", () => {
  it("a daemon without CAP_NET_ADMIN refuses a networked create with one line, and makes nothing", async () => {
    const other = path.join(work, "no-net-admin")
    const weak = await startBangerDaemon(other, { netns: netns!.name, withoutNetAdmin: true })
    try {
      const refused = await runBanger(["--state-dir", other, "vm", "create", "x", "--image", "net-app"], inNetns())
      expectOneLineError(refused, /lacks CAP_NET_ADMIN.*: run the daemon as root, or create the VM with --no-network$/)
      expect(fs.existsSync(path.join(other, "vms")) ? fs.readdirSync(path.join(other, "vms")) : []).toEqual([])
    } finally {
      await weak.stop()
    }
  })

  it("guests reach the host side of their tap and answer from it; two VMs, two addresses; reconcile and delete leave nothing", async () => {
    expect(netns!.ipForward()).toBe("0")
    // Two creates at once: two leases out of one pool, never the same.
    const [web, db] = await Promise.all(
      ["web", "db"].map((name) =>
        json<VmJson>(
          "vm",
          "create",
          name,
          "--image",
          "net-app",
          "--accel",
          "tcg",
          "--memory",
          "256",
          "--disk-size",
          "1G"
        )
      )
    )
    expect(web!.network).not.toBeNull()
    expect(db!.network).not.toBeNull()
    expect(web!.network!.guestAddress).not.toBe(db!.network!.guestAddress)
    for (const vm of [web!, db!]) {
      const net = vm.network!
      expect(net.guestAddress).toMatch(/^10\.213\.0\.\d+$/)
      expect(net.prefixLength).toBe(30)
      expect(net.tap).toMatch(BANGER_TAP)
      expect(net.mac).toMatch(/^02(:[0-9a-f]{2}){5}$/)
    }
    expect(leases()).toHaveLength(2)
    expect(
      bangerTaps()
        .map((link) => link.ifname)
        .sort()
    ).toEqual([web!.network!.tap, db!.network!.tap].sort())
    expect(netns!.nftTables()).toContain("inet banger")
    expect(netns!.ipForward()).toBe("1")

    const resolvers = chooseResolvers(
      fs.existsSync("/etc/resolv.conf") ? fs.readFileSync("/etc/resolv.conf", "utf8") : undefined,
      fs.existsSync("/run/systemd/resolve/resolv.conf")
        ? fs.readFileSync("/run/systemd/resolve/resolv.conf", "utf8")
        : undefined
    )
    for (const vm of [web!, db!]) {
      const net = vm.network!
      await until(
        `${vm.name} to fetch from the host`,
        async () => (await logs(vm.name)).includes("guest fetched: hello from the host side"),
        180_000,
        () => logs(vm.name)
      )
      const console = await logs(vm.name)
      expect(console).toContain(`guest eth0: ${net.guestAddress}/30 via ${net.hostAddress}`)
      for (const server of resolvers) expect(console).toContain(`guest resolv.conf: nameserver ${server}`)
      await until(`${vm.name} to answer on its port`, () => askGuest(net.guestAddress) === `pong from ${vm.name}`)
    }
    expect(netns!.attempt("busybox", "ping", "-c", "1", "-W", "5", web!.network!.guestAddress).status).toBe(0)

    const shown = await ok("vm", "show", "web")
    expect(shown).toMatch(new RegExp(`address:\\s+${web!.network!.guestAddress.replaceAll(".", "\\.")} \\(gateway`))
    expect(await ok("vm", "list")).toMatch(new RegExp(`\\bweb\\s+running\\s+${web!.network!.guestAddress}`))

    // Stopping one VM removes its tap; the other keeps outbound access.
    await ok("vm", "stop", "db", "--force")
    expect(bangerTaps().map((link) => link.ifname)).toEqual([web!.network!.tap])
    expect(netns!.nftTables()).toContain("inet banger")

    // The daemon dies under the running VM. Meanwhile, a tap of banger's naming that no VM has,
    // and someone else's tap and table: the next daemon removes only the first.
    await daemon!.kill()
    netns!.run("ip", "tuntap", "add", "dev", "bg0123456789abc", "mode", "tap")
    netns!.run("ip", "tuntap", "add", "dev", "keep0", "mode", "tap")
    netns!.run("nft", "add", "table", "inet", "other")
    daemon = await startDaemon()
    const names = netns!.links().map((link) => link.ifname)
    expect(names).not.toContain("bg0123456789abc")
    expect(names).toContain("keep0")
    expect(names).toContain(web!.network!.tap)
    expect(netns!.nftTables()).toEqual(expect.arrayContaining(["inet banger", "inet other"]))
    expect(askGuest(web!.network!.guestAddress)).toBe("pong from web")

    // The stopped VM keeps its address across a start.
    const restarted = await json<VmJson>("vm", "start", "db")
    expect(restarted.network).toEqual(db!.network)
    await until("db to answer again", () => askGuest(db!.network!.guestAddress) === "pong from db")

    await ok("vm", "delete", "web", "--force")
    await ok("vm", "delete", "db", "--force")
    expect(bangerTaps()).toEqual([])
    expect(netns!.nftTables()).toEqual(["inet other"])
    expect(netns!.ipForward()).toBe("0")
    expect(leases()).toEqual([])
    expect(vmmProcesses()).toEqual([])
    netns!.run("ip", "link", "delete", "dev", "keep0")
    netns!.run("nft", "delete", "table", "inet", "other")
  }, 900_000)

  it("a systemd Debian gets eth0 from systemd-networkd, which banger enables, and answers from the namespace", async () => {
    const vm = await json<VmJson>(
      "vm",
      "create",
      "deb",
      "--image",
      "debian-systemd",
      "--accel",
      "tcg",
      "--memory",
      "1024",
      "--disk-size",
      "2G"
    )
    try {
      const address = vm.network!.guestAddress
      await until(
        "the Debian guest to answer ping",
        () => netns!.attempt("busybox", "ping", "-c", "1", "-W", "3", address).status === 0,
        180_000,
        () => logs("deb")
      )
    } finally {
      await banger("vm", "delete", "deb", "--force")
    }
    expect(bangerTaps()).toEqual([])
    expect(netns!.nftTables()).not.toContain("inet banger")
    expect(leases()).toEqual([])
  }, 600_000)
})
