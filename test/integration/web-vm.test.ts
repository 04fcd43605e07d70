/**
 * VMs from the web UI in a real browser, under QEMU TCG: create from the form (the operation page
 * follows the boot to ready), the VM page with its console tail, stop, then delete after the
 * confirmation page — and nothing of the VM left: no row, no directory, no QEMU process.
 * One boot for all of it, networked: the daemon and the browser run in a network namespace the
 * test makes (and removes), so the VM's tap and banger's nftables table never touch the host.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { repoRoot, runBanger, startBangerDaemon } from "../support/banger-cli.js"
import { launchBrowser, type TestBrowser } from "../support/browser.js"
import { buildLayer } from "../support/layers.js"
import { createNetns, type TestNetns } from "../support/netns.js"
import { findCloudKernel } from "../support/qemu.js"
import { pushImage, startRegistry, type TestRegistry } from "../support/registry.js"
import { qemuProcessesNaming } from "../support/vm-processes.js"
import { loginUrl, startWebDaemon, type WebDaemon } from "../support/web.js"

let work: string
let state: string
let registry: TestRegistry
let daemon: WebDaemon
let browser: TestBrowser
let page: Page
let shots: string
let netns: TestNetns

const vmDirs = () => (fs.existsSync(path.join(state, "vms")) ? fs.readdirSync(path.join(state, "vms")) : [])

/** QEMU processes whose command line names this test's state dir. */
const qemuProcesses = () => qemuProcessesNaming(state)

const vms = async () => {
  const result = await runBanger(["--state-dir", state, "vm", "list", "--json"])
  expect(result.code).toBe(0)
  return JSON.parse(result.stdout) as Array<{ name: string; state: string }>
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-web-vm-"))
  state = path.join(work, "state")
  shots = process.env.BANGER_SCREENSHOTS === "1" ? path.join(repoRoot, "docs", "screenshots") : path.join(work, "shots")
  fs.mkdirSync(shots, { recursive: true })
  const kernel = await findCloudKernel()
  registry = await startRegistry()
  // A scratch image: busybox, booted with banger's built-in init, running a command that prints.
  const app = await buildLayer([
    { type: "directory", name: "bin" },
    { type: "file", name: "bin/busybox", mode: 0o755, content: fs.readFileSync("/bin/busybox") },
    { type: "directory", name: "work" }
  ])
  await pushImage(registry, "scratch-app", "1", {
    layers: [app],
    config: {
      config: {
        Entrypoint: ["/bin/busybox", "sh", "-c"],
        Cmd: ['echo "hello from the web"; exec /bin/busybox sleep 100000'],
        Env: ["PATH=/bin"],
        WorkingDir: "/work"
      }
    }
  })
  // The registry is on the host's loopback: the image is pulled by a daemon in the host's namespace,
  // then the web daemon (which makes the VM's tap) runs in the test's own.
  const puller = await startBangerDaemon(state)
  const pulled = await runBanger(
    [
      "--state-dir",
      state,
      "image",
      "pull",
      `${registry.host}/scratch-app:1`,
      "--name",
      "app-image",
      "--kernel",
      kernel.kernel,
      "--initrd",
      kernel.initrd
    ],
    { timeoutMs: 300_000 }
  )
  expect(pulled.code, pulled.stderr).toBe(0)
  expect((await puller.stop()).code).toBe(0)
  netns = createNetns()
  daemon = await startWebDaemon(state, { netns: netns.name })
  browser = await launchBrowser({ netns: netns.name })
  page = await browser.context.newPage()
  await page.goto(await loginUrl(state))
})

afterAll(async () => {
  await browser?.close()
  if (daemon) expect((await daemon.stop()).code).toBe(0)
  netns?.remove()
  await registry?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

const shot = (name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true })

describe("VMs from the web UI (QEMU TCG)", () => {
  it("a bad size is refused next to its field, and nothing is created", async () => {
    await page.goto(`${daemon.origin}/vms`)
    await page.fill("#field-name", "web-vm")
    await page.fill("#field-image", "app-image")
    await page.fill("#field-cpus", "two")
    await Promise.all([page.waitForNavigation(), page.click("#vm-form button[type=submit]")])
    expect(await page.textContent("#error-cpus")).toMatch(/number/)
    expect(await page.inputValue("#field-name")).toBe("web-vm")
    expect(await vms()).toEqual([])
  })

  it("creates, shows, stops and deletes a VM", async () => {
    await page.goto(`${daemon.origin}/vms`)
    await page.fill("#field-name", "web-vm")
    await page.fill("#field-image", "app-image")
    await page.fill("#field-cpus", "1")
    await page.fill("#field-memoryMib", "256")
    await page.fill("#field-diskSize", "1G")
    await page.selectOption("#field-accel", "tcg")
    await shot("vm-create")
    await Promise.all([page.waitForNavigation(), page.click("#vm-form button[type=submit]")])
    expect(new URL(page.url()).pathname).toMatch(/^\/ops\/[0-9a-f]{12}$/)
    await page.waitForSelector("#op-state.state-succeeded", { timeout: 300_000 })

    await Promise.all([page.waitForNavigation(), page.click("#op-result a")])
    expect(await page.textContent("h1")).toBe("VM web-vm")
    expect(await page.textContent("#vm-state")).toBe("running")
    expect(await page.textContent("#console")).toContain("banger: web-vm ready")
    expect(qemuProcesses()).toHaveLength(1)
    // Its address, and the ssh command to copy; the tap is in the test's namespace only.
    const shown = await page.textContent("#vm-address")
    expect(shown).toMatch(/^\d+\.\d+\.\d+\.\d+$/)
    expect(await page.textContent("#ssh-command")).toBe("banger vm ssh web-vm")
    expect(netns.links().filter((link) => link.ifname.startsWith("bg"))).toHaveLength(1)
    expect(netns.nftTables()).toContain("inet banger")
    await shot("vm")

    await Promise.all([page.waitForNavigation(), page.click("form[action$='/stop'] button")])
    expect(await page.textContent("#vm-state")).toMatch(/^stopped/)
    expect(qemuProcesses()).toEqual([])
    expect(await vms()).toEqual([expect.objectContaining({ name: "web-vm", state: "stopped" })])

    await Promise.all([page.waitForNavigation(), page.click("a[href$='/delete']")])
    expect(await page.textContent("h1")).toBe("Delete VM web-vm?")
    await Promise.all([page.waitForNavigation(), page.click("button.danger")])
    expect(new URL(page.url()).pathname).toBe("/vms")
    expect(await page.textContent("main")).toContain("No VMs yet.")
    expect(await vms()).toEqual([])
    expect(vmDirs()).toEqual([])
    expect(netns.links().filter((link) => link.ifname.startsWith("bg"))).toEqual([])
    expect(netns.nftTables()).not.toContain("inet banger")
  })
})
