/**
 * Clients the daemon acts for: a root daemon serving `--group nogroup`, and the real CLI run as
 * nobody through setpriv. Every host path nobody names is read with nobody's rights (the kernel
 * decides, in a child running as nobody): what nobody cannot read is refused with one line naming
 * the path and the user, and nothing is stored; what it can read works. The peer comes from the
 * kernel (SO_PEERCRED): a client claiming to be root in its request headers is still nobody.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expectOneLineError, type RunningDaemon, runBanger, startBangerDaemon } from "../support/banger-cli.js"
import { buildLayer } from "../support/layers.js"
import { findCloudKernel } from "../support/qemu.js"
import { pushImage, startRegistry, type TestRegistry } from "../support/registry.js"
import { imageRows, leftovers } from "../support/state-leftovers.js"
import { freePort, request } from "../support/web.js"

const NOBODY = { uid: 65534, gid: 65534 }
const REFUSED = (file: string) =>
  new RegExp(
    `^banger: ${file.replaceAll(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: not readable by user nobody \\(uid 65534\\)$`
  )

let work: string
let state: string
let daemon: RunningDaemon
let webOrigin: string
let registry: TestRegistry
/** A real kernel, initrd and modules tree nobody can read, in a directory it can search. */
let open: { kernel: string; initrd: string; modules: string }
/** A root-only (0600) copy of the kernel, and a readable one behind a 0700 directory. */
let privateKernel: string
let hiddenKernel: string

const asNobody = (...args: Array<string>) =>
  runBanger(["--state-dir", state, ...args], { asUser: NOBODY, env: { BANGER_NO_AUTOSTART: "1" }, timeoutMs: 120_000 })
const asRoot = (...args: Array<string>) =>
  runBanger(["--state-dir", state, ...args], { env: { BANGER_NO_AUTOSTART: "1" }, timeoutMs: 120_000 })

/** `banger ui` run as nobody: a login URL for a session that acts for nobody. */
const asNobodyUi = async () => {
  const result = await runBanger(["--state-dir", state, "ui"], {
    asUser: NOBODY,
    env: { BANGER_NO_AUTOSTART: "1", DISPLAY: undefined, WAYLAND_DISPLAY: undefined }
  })
  expect(result.code, result.stderr).toBe(0)
  return result.stdout.trim()
}

const kernelNames = async () => {
  const listed = await asRoot("kernel", "list", "--json")
  expect(listed.code, listed.stderr).toBe(0)
  return (JSON.parse(listed.stdout) as Array<{ name: string }>).map((kernel) => kernel.name)
}

/** Nothing half-done: no staging dirs, no intake copies in tmp. */
const expectNothingLeft = () => {
  const left = leftovers(state)
  expect(left.tmp).toEqual([])
  expect(left.staging).toEqual([])
  const kernels = path.join(state, "kernels")
  const inKernels = fs.existsSync(kernels) ? fs.readdirSync(kernels) : []
  expect(inKernels.filter((name) => name.startsWith("."))).toEqual([])
}

beforeAll(async () => {
  registry = await startRegistry()
  const layer = await buildLayer([{ type: "file", name: "etc-hostname", content: "tiny\n" }])
  await pushImage(registry, "tiny", "1", { layers: [layer] })
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-client-paths-"))
  fs.chmodSync(work, 0o755)
  const boot = await findCloudKernel()
  const readable = path.join(work, "readable")
  fs.mkdirSync(path.join(readable, "6.1.0-test", "kernel", "fs"), { recursive: true, mode: 0o755 })
  open = {
    kernel: path.join(readable, "vmlinuz"),
    initrd: path.join(readable, "initrd.img"),
    modules: path.join(readable, "6.1.0-test")
  }
  fs.copyFileSync(boot.kernel, open.kernel)
  fs.copyFileSync(boot.initrd, open.initrd)
  fs.writeFileSync(path.join(open.modules, "kernel", "fs", "ext4.ko"), "module bytes")
  fs.writeFileSync(path.join(open.modules, "modules.dep"), "kernel/fs/ext4.ko:\n")
  fs.symlinkSync("/etc/shadow", path.join(open.modules, "build"))
  for (const dir of [
    readable,
    open.modules,
    path.join(open.modules, "kernel"),
    path.join(open.modules, "kernel", "fs")
  ])
    fs.chmodSync(dir, 0o755)
  for (const file of [open.kernel, open.initrd]) fs.chmodSync(file, 0o644)
  privateKernel = path.join(readable, "private-vmlinuz")
  fs.copyFileSync(boot.kernel, privateKernel)
  fs.chmodSync(privateKernel, 0o600)
  const closed = path.join(work, "closed")
  fs.mkdirSync(closed, { mode: 0o700 })
  hiddenKernel = path.join(closed, "vmlinuz")
  fs.copyFileSync(boot.kernel, hiddenKernel)
  fs.chmodSync(hiddenKernel, 0o644)
  state = path.join(work, "state")
  fs.mkdirSync(state, { mode: 0o755 })
  const port = await freePort()
  webOrigin = `http://127.0.0.1:${port}`
  daemon = await startBangerDaemon(state, { extraArgs: ["--group", "nogroup", "--web", `127.0.0.1:${port}`] })
}, 120_000)

afterAll(async () => {
  if (daemon) {
    const stopped = await daemon.stop()
    expect(stopped.code, stopped.stderr).toBe(0)
  }
  await registry?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

describe("client paths are read with the client's rights (root daemon, --group, CLI as nobody)", () => {
  it("kernel register: unreadable files are refused in one line and nothing is stored", async () => {
    for (const file of ["/etc/shadow", privateKernel, hiddenKernel]) {
      expectOneLineError(await asNobody("kernel", "register", "stolen", "--kernel", file), REFUSED(file))
    }
    expectOneLineError(
      await asNobody("kernel", "register", "stolen", "--kernel", open.kernel, "--initrd", privateKernel),
      REFUSED(privateKernel)
    )
    // A modules tree with one file nobody cannot read is refused whole.
    const secret = path.join(open.modules, "secret.ko")
    fs.writeFileSync(secret, "root only", { mode: 0o600 })
    try {
      expectOneLineError(
        await asNobody("kernel", "register", "stolen", "--kernel", open.kernel, "--modules", open.modules),
        /^banger: .*6\.1\.0-test: not readable by user nobody \(uid 65534\)$/
      )
    } finally {
      fs.rmSync(secret)
    }
    expect(await kernelNames()).toEqual([])
    expectNothingLeft()
  })

  it("kernel register: a text file nobody can read is not a kernel, named as nobody gave it", async () => {
    const text = path.join(work, "readable", "notes.txt")
    fs.writeFileSync(text, "just some text\n", { mode: 0o644 })
    expectOneLineError(
      await asNobody("kernel", "register", "text", "--kernel", text),
      new RegExp(`^banger: ${text.replaceAll("/", "\\/").replaceAll(".", "\\.")} is not a kernel image: `)
    )
    expect(await kernelNames()).toEqual([])
    expectNothingLeft()
  })

  it("kernel register: what nobody can read is copied into the store, symlinks left out", async () => {
    const registered = await asNobody(
      "kernel",
      "register",
      "nobodys",
      "--kernel",
      open.kernel,
      "--initrd",
      open.initrd,
      "--modules",
      open.modules,
      "--json"
    )
    expect(registered.code, registered.stderr).toBe(0)
    const kernel = JSON.parse(registered.stdout)
    expect(kernel.format).toBe("bzImage")
    expect(kernel.version).toBe("6.1.0-test")
    expect(fs.readFileSync(kernel.kernel).equals(fs.readFileSync(open.kernel))).toBe(true)
    expect(fs.readFileSync(kernel.initrd).equals(fs.readFileSync(open.initrd))).toBe(true)
    expect(fs.readFileSync(path.join(kernel.modules, "kernel", "fs", "ext4.ko"), "utf8")).toBe("module bytes")
    // The tree's symlink (to a file nobody cannot read, as it happens) did not come along.
    expect(fs.existsSync(path.join(kernel.modules, "build"))).toBe(false)
    expect(await kernelNames()).toEqual(["nobodys"])
    expectNothingLeft()
  })

  it("root's own CLI is served with the daemon's rights (its 0600 file works)", async () => {
    const registered = await asRoot("kernel", "register", "roots", "--kernel", privateKernel, "--json")
    expect(registered.code, registered.stderr).toBe(0)
    expect(await kernelNames()).toEqual(["nobodys", "roots"])
  })

  it("image pull --kernel/--initrd: refused before anything is pulled; readable ones boot the image", async () => {
    const ref = `${registry.host}/tiny:1`
    expectOneLineError(
      await asNobody("image", "pull", ref, "--name", "stolen", "--kernel", privateKernel),
      REFUSED(privateKernel)
    )
    expectOneLineError(
      await asNobody("image", "pull", ref, "--name", "stolen", "--kernel", open.kernel, "--initrd", "/etc/shadow"),
      REFUSED("/etc/shadow")
    )
    expectOneLineError(
      await asNobody("image", "pull", ref, "--name", "stolen", "--kernel", open.kernel, "--modules", "/root"),
      REFUSED("/root")
    )
    expect(imageRows(state)).toEqual([])
    // The copies outlive the request: the operation stages them after the call has answered.
    const pulled = await asNobody(
      "image",
      "pull",
      ref,
      "--name",
      "tiny",
      "--kernel",
      open.kernel,
      "--initrd",
      open.initrd,
      "--json"
    )
    expect(pulled.code, pulled.stderr).toBe(0)
    const image = JSON.parse(pulled.stdout)
    expect(fs.readFileSync(image.kernel).equals(fs.readFileSync(open.kernel))).toBe(true)
    expect(fs.readFileSync(image.initrd).equals(fs.readFileSync(open.initrd))).toBe(true)
    expect(imageRows(state).map((row) => row.name)).toEqual(["tiny"])
    expectNothingLeft()
  })

  it("image register (files left in place for later reads) is refused for nobody", async () => {
    const rootfs = path.join(work, "readable", "rootfs.ext4")
    fs.writeFileSync(rootfs, "", { mode: 0o644 })
    expectOneLineError(
      await asNobody("image", "register", "mine", "--rootfs", rootfs, "--kernel", open.kernel),
      /^banger: .*rootfs\.ext4: image register leaves files in place .* only root or the daemon's user can register them/
    )
    expect(imageRows(state).map((row) => row.name)).toEqual(["tiny"])
  })

  it("--catalog is read as nobody too; vm create --ssh-key is read by the CLI as nobody", async () => {
    const catalog = path.join(work, "catalog.json")
    fs.writeFileSync(catalog, "{}", { mode: 0o600 })
    expectOneLineError(await asNobody("--catalog", catalog, "catalog", "list"), REFUSED(catalog))
    // Readable, it is read: its errors and its listing name the file nobody gave, not the daemon's copy.
    fs.chmodSync(catalog, 0o644)
    expectOneLineError(
      await asNobody("--catalog", catalog, "catalog", "list"),
      new RegExp(`^banger: invalid catalog ${catalog.replaceAll("/", "\\/").replaceAll(".", "\\.")}: `)
    )
    const kernel = { name: "k", ref: "localhost:1/k:1", arch: "x86_64", description: "-", default: true }
    const image = { name: "i", ref: "localhost:1/i:1", kernel: "k", description: "-", default: true }
    fs.writeFileSync(catalog, JSON.stringify({ kernels: [kernel], images: [image] }))
    const listed = await asNobody("--catalog", catalog, "catalog", "list", "--json")
    expect(listed.code, listed.stderr).toBe(0)
    expect(JSON.parse(listed.stdout).source).toBe(catalog)
    const key = path.join(work, "closed", "id.pub")
    fs.writeFileSync(key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB1nGk1nVvCUpbUYeWW2CRuVjPQtvTVd4ZRx6sVU9Hka x\n")
    const created = await asNobody("vm", "create", "v", "--image", "tiny", "--ssh-key", key, "--no-start")
    expectOneLineError(
      created,
      new RegExp(`^banger: ${key.replaceAll("/", "\\/").replaceAll(".", "\\.")}: .*permission denied`, "i")
    )
    expectNothingLeft()
  })

  it("the peer is the kernel's: a request claiming root in its headers is still nobody's", () => {
    // A hand-written RPC request over the socket (ndjson), as nobody, with a forged peer header.
    const request = {
      _tag: "Request",
      id: "1",
      tag: "kernel.register",
      payload: { name: "forged", kernel: privateKernel },
      headers: [
        ["x-banger-peer", "0:0:1:"],
        ["X-Banger-Peer", "0:0:1:"]
      ]
    }
    const script = `const s = require("node:net").connect(${JSON.stringify(daemon.socket)});
let out = "";
s.on("connect", () => s.write(${JSON.stringify(`${JSON.stringify(request)}\n`)}));
s.on("data", (d) => { out += d; if (out.includes('"_tag":"Exit"')) { console.log(out); process.exit(0) } });
s.on("error", (e) => { console.log(e.code); process.exit(1) })`
    const result = spawnSync(
      "setpriv",
      [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, "--clear-groups", process.execPath, "-e", script],
      { encoding: "utf8", timeout: 30_000 }
    )
    expect(result.status, result.stderr).toBe(0)
    const exit = JSON.parse(result.stdout.trim().split("\n").at(-1)!)
    expect(exit.exit._tag).toBe("Failure")
    expect(JSON.stringify(exit.exit.cause)).toContain("not readable by user nobody (uid 65534)")
    expect(spawnSync("ls", [path.join(state, "kernels")], { encoding: "utf8" }).stdout.split("\n")).not.toContain(
      "forged"
    )
  })

  it("the web UI acts for the user who asked for its login link", async () => {
    const ui = await asNobodyUi()
    const login = await request(ui)
    expect(login.status).toBe(303)
    const cookie = String(login.headers["set-cookie"]?.[0] ?? "").split(";")[0]!
    const page = await request(`${webOrigin}/images`, { headers: { cookie } })
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1]
    expect(csrf).toBeDefined()
    const pull = (kernel: string) =>
      request(`${webOrigin}/images/pull`, {
        headers: { cookie, origin: webOrigin },
        form: { _csrf: csrf!, reference: `${registry.host}/tiny:1`, name: "web-tiny", kernel }
      })
    const refused = await pull(privateKernel)
    expect(refused.status).toBe(400)
    expect(refused.body).toContain(`${privateKernel}: not readable by user nobody (uid 65534)`)
    expect(imageRows(state).map((row) => row.name)).toEqual(["tiny"])
    // What nobody can read, the UI pulls with.
    const accepted = await pull(open.kernel)
    expect(accepted.status, accepted.body).toBe(303)
    expect(accepted.headers.location).toMatch(/^\/ops\/[0-9a-f]{12}$/)
    const deadline = Date.now() + 60_000
    while (!imageRows(state).some((row) => row.name === "web-tiny") && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100))
    expect(imageRows(state).map((row) => row.name)).toEqual(["tiny", "web-tiny"])
    const shown = await asRoot("image", "show", "web-tiny", "--json")
    expect(fs.readFileSync(JSON.parse(shown.stdout).kernel).equals(fs.readFileSync(open.kernel))).toBe(true)
    // The intake goes as the operation ends, just after the image's row lands.
    while (leftovers(state).tmp.length > 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100))
    expectNothingLeft()
  })
})
