/**
 * The web UI's pure parts: the escaping template (with hostile names), pages rendering user input,
 * --web address parsing and the Host/Origin rules, and form decoding with the RPC payload Schemas.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { defaultWebAddress } from "../../src/cli/daemon-command.js"
import { ImageNameTaken, InvalidReference } from "../../src/domain/errors.js"
import { Image, OperationStatus } from "../../src/rpc/schemas.js"
import { hostAllowed, originAllowed, parseWebAddress, webConfig } from "../../src/web/address.js"
import { decodePullForm, decodeVmCreateForm, errorFields, pullErrorFields } from "../../src/web/forms.js"
import { escapeHtml, html, jsonScript, unsafeRaw } from "../../src/web/html.js"
import { imagePage, imagesPage } from "../../src/web/pages/images.js"
import { operationPage } from "../../src/web/pages/operation.js"

const hostile = `"><script>alert(1)</script><img src=x onerror='alert(2)'>&amp;\``

const image = (name: string) =>
  new Image({
    id: "0123456789ab",
    name,
    ref: `127.0.0.1:5000/${name}:1`,
    manifestDigest: null,
    platform: "linux/amd64",
    managed: true,
    rootfs: `/state/images/x/${name}.ext4`,
    kernel: "/state/images/x/kernel",
    initrd: null,
    modules: null,
    sizeBytes: 1 << 30,
    createdAt: "2026-12-05T21:00:00.000Z"
  })

/** No markup survives: no tag opens and no attribute value is closed by the input. */
const expectInert = (markup: string) => {
  expect(markup).not.toContain("<script>alert")
  expect(markup).not.toContain("<img")
  expect(markup).not.toContain(`"><script`)
  expect(markup).not.toContain(hostile)
  expect(markup).not.toContain("onerror='")
}

describe("html template", () => {
  it("escapes every interpolated string, in content and in attributes", () => {
    const out = html`<p title="${hostile}">${hostile}</p>`.value
    expectInert(out)
    expect(out).toBe(`<p title="${escapeHtml(hostile)}">${escapeHtml(hostile)}</p>`)
    expect(escapeHtml(hostile)).toBe(
      "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&#39;alert(2)&#39;&gt;&amp;amp;&#96;"
    )
  })

  it("nests Html unescaped, flattens arrays, drops null/undefined/false", () => {
    const items = ["<a>", "b"].map((text) => html`<li>${text}</li>`)
    expect(html`<ul>${items}${null}${undefined}${false}${0}</ul>`.value).toBe("<ul><li>&lt;a&gt;</li><li>b</li>0</ul>")
    expect(html`${unsafeRaw("<br>")}`.value).toBe("<br>")
  })

  it("keeps JSON from closing its script element", () => {
    const out = jsonScript({ name: "</script><script>alert(1)</script>" }).value
    expect(out).not.toContain("</script>")
    expect(JSON.parse(out)).toEqual({ name: "</script><script>alert(1)</script>" })
  })
})

describe("pages", () => {
  it("render hostile names, refs, form values and error messages inert", () => {
    const context = { csrf: `csrf"${hostile}` }
    const pages = [
      imagePage(context, image(hostile)).value,
      imagesPage(
        context,
        [image(hostile)],
        [],
        { reference: hostile, name: hostile },
        errorFields(new InvalidReference({ reference: hostile, reason: hostile }), pullErrorFields)
      ).value
    ]
    for (const page of pages) {
      expectInert(page)
      expect(page).toContain(escapeHtml(hostile))
    }
  })

  it("shows an operation's typed error and its byte progress", () => {
    const status = new OperationStatus({
      id: "abc123",
      kind: "image.pull",
      target: hostile,
      state: "failed",
      stage: "fetch",
      progress: { layers: [], layerCount: 2, bytesDone: 512, bytesTotal: 2048 },
      result: null,
      error: new ImageNameTaken({ name: hostile, reason: "exists" }),
      startedAt: "2026-12-05T21:00:00.000Z",
      endedAt: "2026-12-05T21:00:01.000Z"
    })
    const page = operationPage({ csrf: "t" }, status).value
    expectInert(page)
    expect(page).toContain('<span id="op-percent">25 %</span>')
    expect(page).toContain("ImageNameTaken")
    expect(page).not.toContain("Cancel")
    expect(page).toContain('<dd id="op-retry">none</dd>')
  })

  it("shows the last retry the registry client announced, escaped", () => {
    const status = new OperationStatus({
      id: "abc124",
      kind: "image.pull",
      target: "app",
      state: "running",
      stage: "fetch",
      progress: { layers: [], layerCount: 3, bytesDone: 0, bytesTotal: 0 },
      retry: { what: "layer 2/3", reason: `no data for 30s ${hostile}`, attempt: 2, of: 4, count: 1 },
      result: null,
      error: null,
      startedAt: "2026-12-05T21:00:00.000Z",
      endedAt: null
    })
    const page = operationPage({ csrf: "t" }, status).value
    expectInert(page)
    expect(page).toContain(
      `<dd id="op-retry">layer 2/3: no data for 30s ${escapeHtml(hostile)}, retrying (2 of 4)</dd>`
    )
  })
})

describe("--web address", () => {
  it("parses HOST:PORT, [V6]:PORT and a bare port; refuses names and bad ports", () => {
    expect(parseWebAddress("127.0.0.1:7878")).toEqual(Either.right({ host: "127.0.0.1", port: 7878 }))
    expect(parseWebAddress("[::1]:80")).toEqual(Either.right({ host: "::1", port: 80 }))
    expect(parseWebAddress("9000")).toEqual(Either.right({ host: "127.0.0.1", port: 9000 }))
    expect(parseWebAddress("localhost:1")).toEqual(Either.right({ host: "localhost", port: 1 }))
    for (const bad of ["evil.example:80", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1", ":", "1.2.3.4:5:6"])
      expect(Either.isLeft(parseWebAddress(bad)), bad).toBe(true)
  })

  it("a bare --web gets the default address; a given one is kept", () => {
    expect(defaultWebAddress(["daemon", "--web"])).toEqual(["daemon", "--web=127.0.0.1:7878"])
    expect(defaultWebAddress(["daemon", "--web", "--op-ttl", "1h"])).toEqual([
      "daemon",
      "--web=127.0.0.1:7878",
      "--op-ttl",
      "1h"
    ])
    expect(defaultWebAddress(["daemon", "--web", "127.0.0.1:9000"])).toEqual(["daemon", "--web", "127.0.0.1:9000"])
  })

  it("refuses a non-loopback address unless remote access is allowed", () => {
    expect(Either.isLeft(webConfig("0.0.0.0:7878", false))).toBe(true)
    expect(Either.isLeft(webConfig("192.168.1.5:7878", false))).toBe(true)
    expect(webConfig("0.0.0.0:7878", true)).toEqual(Either.right({ host: "0.0.0.0", port: 7878, allowRemote: true }))
    expect(Either.isRight(webConfig("127.0.0.2:7878", false))).toBe(true)
  })

  it("accepts a Host header only as an IP literal or localhost on the listening port", () => {
    const loopback = { host: "127.0.0.1", port: 7878 }
    expect(hostAllowed("127.0.0.1:7878", loopback)).toBe(true)
    expect(hostAllowed("localhost:7878", loopback)).toBe(true)
    expect(hostAllowed("[::1]:7878", loopback)).toBe(true)
    // DNS rebinding: a hostile name that resolves to 127.0.0.1.
    expect(hostAllowed("rebind.evil.example:7878", loopback)).toBe(false)
    expect(hostAllowed("127.0.0.1:7879", loopback)).toBe(false)
    expect(hostAllowed("127.0.0.1", loopback)).toBe(false)
    expect(hostAllowed("192.168.1.5:7878", loopback)).toBe(false)
    expect(hostAllowed(undefined, loopback)).toBe(false)
    const wildcard = { host: "0.0.0.0", port: 7878 }
    expect(hostAllowed("192.168.1.5:7878", wildcard)).toBe(true)
    expect(hostAllowed("box.lan:7878", wildcard)).toBe(false)
    expect(originAllowed("http://127.0.0.1:7878", "127.0.0.1:7878")).toBe(true)
    expect(originAllowed("http://evil.example", "127.0.0.1:7878")).toBe(false)
    expect(originAllowed("null", "127.0.0.1:7878")).toBe(false)
  })
})

describe("forms", () => {
  it("a pull form becomes image.pull's payload: a stored kernel by name, a path as Paths", () => {
    expect(decodePullForm({ reference: " debian ", name: "", kernel: "k1", _csrf: "x" })).toEqual(
      Either.right({ reference: "debian", kernel: { _tag: "Stored", name: "k1" } })
    )
    expect(decodePullForm({ reference: "debian", kernel: "/boot/vmlinuz", initrd: "/boot/initrd" })).toEqual(
      Either.right({ reference: "debian", kernel: { _tag: "Paths", kernel: "/boot/vmlinuz", initrd: "/boot/initrd" } })
    )
  })

  it("vm.create's Schema refuses a non-numeric size, next to its field", () => {
    const decoded = decodeVmCreateForm({ name: "box", cpus: "many", memoryMib: "512" })
    expect(Either.isLeft(decoded)).toBe(true)
    if (Either.isLeft(decoded)) {
      expect(Object.keys(decoded.left)).toEqual(["cpus"])
      expect(decoded.left.cpus).toMatch(/number/)
    }
    const accel = decodeVmCreateForm({ name: "box", accel: "warp" })
    expect(Either.isLeft(accel) && Object.keys(accel.left)).toEqual(["accel"])
    expect(decodeVmCreateForm({ name: "box", cpus: "2", memoryMib: "512", diskSize: "4G" })).toEqual(
      Either.right({ name: "box", cpus: 2, memoryMib: 512, diskSize: "4G", start: true })
    )
    expect(decodeVmCreateForm({ name: "box", noNetwork: "1" })).toEqual(
      Either.right({ name: "box", start: true, network: false })
    )
  })

  it("a handler's typed error lands on its field, others above the form", () => {
    expect(errorFields(new InvalidReference({ reference: "X", reason: "bad" }), pullErrorFields)).toEqual({
      reference: 'invalid image reference "X": bad'
    })
    expect(Object.keys(errorFields({ _tag: "StoreError", message: "m" }, pullErrorFields))).toEqual(["form"])
  })
})
