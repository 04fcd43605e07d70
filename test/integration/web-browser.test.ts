/**
 * The web UI in a real browser (headless chromium) against a real `banger daemon --web` and a
 * real registry on loopback: log in with `banger ui`'s token, pull from the form and watch the
 * live progress reach 100 %, cancel a (throttled) pull mid-way and see it rolled back, and a bad
 * reference's error shown next to its field. Screenshots of each page go to docs/screenshots/
 * when BANGER_SCREENSHOTS=1 (else to a temp dir).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { repoRoot, runBanger } from "../support/banger-cli.js"
import { launchBrowser, type TestBrowser } from "../support/browser.js"
import { type BuiltLayer, buildLayer } from "../support/layers.js"
import { findCloudKernel } from "../support/qemu.js"
import { pushImage, startRegistry, type TestRegistry } from "../support/registry.js"
import { type RegistryProxy, startRegistryProxy } from "../support/registry-proxy.js"
import { leftovers, nothingLeft } from "../support/state-leftovers.js"
import { loginUrl, startWebDaemon, type WebDaemon } from "../support/web.js"

let work: string
let state: string
let registry: TestRegistry
let daemon: WebDaemon
let browser: TestBrowser
let page: Page
let kernel: string
/** The layer of `slow:1` only (the blob cache has app:1's by then), trickled in the cancel test. */
let slowLayer: BuiltLayer
let shots: string

/** What page functions use of the browser's globals (the test is compiled without the DOM lib). */
interface BrowserGlobals {
  readonly document: { getElementById(id: string): { readonly textContent: string | null } | null }
}

/** Incompressible bytes, so the layer is as large on the wire as on disk. */
const noise = (bytes: number, seed: number) => {
  const out = Buffer.alloc(bytes)
  let x = seed
  for (let i = 0; i < bytes; i += 4) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out.writeInt32LE(x | 0, i)
  }
  return out
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-web-browser-"))
  state = path.join(work, "state")
  shots = process.env.BANGER_SCREENSHOTS === "1" ? path.join(repoRoot, "docs", "screenshots") : path.join(work, "shots")
  fs.mkdirSync(shots, { recursive: true })
  kernel = (await findCloudKernel()).kernel
  registry = await startRegistry()
  const small = await buildLayer([{ type: "file", name: "etc/hostname", content: "web\n" }], "gzip")
  const big = (seed: number) =>
    buildLayer(
      [
        { type: "directory", name: "data" },
        { type: "file", name: "data/noise", content: noise(4 << 20, seed) }
      ],
      "gzip"
    )
  await pushImage(registry, "app", "1", { layers: [small, await big(0x9e3779b9)] })
  slowLayer = await big(0x12345678)
  await pushImage(registry, "slow", "1", { layers: [small, slowLayer] })
  daemon = await startWebDaemon(state)
  browser = await launchBrowser()
  page = await browser.context.newPage()
})

afterAll(async () => {
  await browser?.close()
  if (daemon) expect((await daemon.stop()).code).toBe(0)
  await registry?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

const shot = (name: string, target: Page = page) =>
  target.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true })

const images = async () => {
  const result = await runBanger(["--state-dir", state, "image", "list", "--json"])
  expect(result.code).toBe(0)
  return (JSON.parse(result.stdout) as Array<{ name: string }>).map((image) => image.name)
}

/** Fills the pull form on /images and submits it. */
const submitPull = async (fields: Readonly<Record<string, string>>) => {
  await page.goto(`${daemon.origin}/images`)
  for (const [name, value] of Object.entries(fields)) await page.fill(`#field-${name}`, value)
  await Promise.all([page.waitForNavigation(), page.click("#pull-form button[type=submit]")])
}

describe("web UI in a browser", () => {
  it("logs in with banger ui's one-time token", async () => {
    await page.goto(await loginUrl(state))
    expect(new URL(page.url()).pathname).toBe("/")
    expect(await page.textContent("h1")).toBe("Dashboard")
    const cookies = await browser.context.cookies(daemon.origin)
    expect(cookies.map(({ name, httpOnly, sameSite }) => ({ name, httpOnly, sameSite }))).toEqual([
      { name: "banger_session", httpOnly: true, sameSite: "Strict" }
    ])
    // The cookie is HttpOnly: the page's scripts cannot read it.
    expect(await page.evaluate("document.cookie")).toBe("")
  })

  it("pulls an image from the form and shows its progress reach 100 %", async () => {
    await submitPull({ reference: `${registry.host}/app:1`, kernel })
    expect(new URL(page.url()).pathname).toMatch(/^\/ops\/[0-9a-f]{12}$/)
    await page.waitForSelector("#op-state.state-succeeded", { timeout: 120_000 })
    expect(await page.textContent("#op-percent")).toBe("100 %")
    expect(await page.textContent("#op-bytes")).toMatch(/\(2\/2 layers\)$/)
    expect(await page.$("form[action$='/cancel']")).toBeNull()
    await shot("operation")
    await Promise.all([page.waitForNavigation(), page.click("#op-result a")])
    expect(await page.textContent("h1")).toBe("Image app-1")
    expect(await page.textContent("dd.mono")).toBeTruthy()
    await shot("image")
    expect(await images()).toEqual(["app-1"])
  })

  it("cancels a pull mid-way: the operation is cancelled and rolled back", async () => {
    let proxy: RegistryProxy | undefined
    try {
      // The big layer trickles in over ~20 s: time to see progress move, then cancel.
      proxy = await startRegistryProxy(registry, {
        fault: "trickle",
        faultDigests: [slowLayer.digest],
        trickleParts: 100,
        trickleIntervalMs: 200
      })
      await submitPull({ reference: `${proxy.host}/slow:1`, kernel })
      expect(await page.textContent("#op-state")).toBe("running")
      // Progress arrives over server-sent events: the served text changes without a reload.
      const served = await page.textContent("#op-bytes")
      await page.waitForFunction(
        ([before]) => {
          const text = (id: string) =>
            (globalThis as unknown as BrowserGlobals).document.getElementById(id)?.textContent
          return text("op-bytes") !== before && !text("op-bytes")?.startsWith("0 B") && text("op-state") === "running"
        },
        [served] as const,
        { timeout: 60_000 }
      )
      await shot("operation-running")
      await Promise.all([page.waitForNavigation(), page.click("form[action$='/cancel'] button")])
      await page.waitForSelector("#op-state.state-cancelled", { timeout: 60_000 })
      expect(await page.textContent("#op-error")).toMatch(/^OperationCancelled: .*rolled back/)
    } finally {
      await proxy?.stop()
    }
    expect(await images()).toEqual(["app-1"])
    expect(leftovers(state)).toEqual(nothingLeft)
  })

  it("shows a bad reference's error next to the field", async () => {
    await submitPull({ reference: "Not A Ref!", kernel })
    expect(await page.textContent("#error-reference")).toMatch(/^invalid image reference "Not A Ref!"/)
    expect(await page.inputValue("#field-reference")).toBe("Not A Ref!")
    expect(await page.$("#error-form")).toBeNull()
    await shot("images-error")
  })

  it("shows every page (screenshots)", async () => {
    for (const [name, url] of [
      ["dashboard", "/"],
      ["images", "/images"],
      ["catalog", "/catalog"],
      ["vms", "/vms"]
    ] as const) {
      const response = await page.goto(`${daemon.origin}${url}`)
      expect(response?.status(), url).toBe(200)
      await shot(name)
    }
    const phone = await browser.context.newPage()
    await phone.setViewportSize({ width: 390, height: 844 })
    await phone.goto(`${daemon.origin}/`)
    // Readable on a phone: nothing wider than the screen but the tables' own scrollers.
    expect(await phone.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390)
    await shot("dashboard-phone", phone)
    await phone.close()
  })
  it("deletes an image after a confirmation page", async () => {
    await page.goto(`${daemon.origin}/images/app-1`)
    await Promise.all([page.waitForNavigation(), page.click("a[href$='/delete']")])
    expect(await page.textContent("h1")).toBe("Delete image app-1?")
    await shot("image-delete")
    // Only the confirmation's POST deletes: the page on the way did not.
    expect(await images()).toEqual(["app-1"])
    await Promise.all([page.waitForNavigation(), page.click("button.danger")])
    expect(new URL(page.url()).pathname).toBe("/images")
    expect(await page.textContent("main")).toContain("No images yet.")
    expect(await images()).toEqual([])
    expect(leftovers(state)).toEqual(nothingLeft)
  })
})
