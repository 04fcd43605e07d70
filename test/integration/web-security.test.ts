/**
 * The web UI's gate, against a real `banger daemon --web` on loopback: the one-time login token,
 * the session cookie's flags, and every state-changing request refused without the cookie, with a
 * wrong Origin or Host, or without the CSRF token — checked by the state: no operation begun.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expectOneLineError, runBanger, withBangerDaemon } from "../support/banger-cli.js"
import { FAKE_KERNEL_BYTES } from "../support/fake-kernel.js"
import { freePort, logIn, loginUrl, request, startWebDaemon, type WebDaemon } from "../support/web.js"

let work: string
let state: string
let daemon: WebDaemon

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-web-security-"))
  state = path.join(work, "state")
  fs.writeFileSync(path.join(work, "vmlinuz"), FAKE_KERNEL_BYTES)
  daemon = await startWebDaemon(state)
})

afterAll(async () => {
  if (daemon) {
    const stopped = await daemon.stop()
    expect(stopped.code).toBe(0)
  }
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

/** A pull the daemon would begin if it accepted the request (its registry is nowhere). */
const pullForm = (csrf?: string) => ({
  ...(csrf === undefined ? {} : { _csrf: csrf }),
  reference: "127.0.0.1:9/nothing:1",
  kernel: path.join(work, "vmlinuz")
})

const operations = async () => {
  const result = await runBanger(["--state-dir", state, "op", "list", "--json"])
  expect(result.code).toBe(0)
  return JSON.parse(result.stdout) as Array<{ id: string }>
}

describe("banger daemon --web: login", () => {
  it("a login token works once and becomes an HttpOnly SameSite=Strict session cookie", async () => {
    const url = await loginUrl(state)
    expect(url).toMatch(new RegExp(`^${daemon.origin}/login\\?token=[A-Za-z0-9_-]{32}$`))
    const first = await request(url)
    expect(first.status).toBe(303)
    expect(first.headers.location).toBe("/")
    const cookie = String(first.headers["set-cookie"]?.[0])
    expect(cookie).toMatch(/^banger_session=[A-Za-z0-9_-]{32}; Path=\/; HttpOnly; SameSite=Strict$/)
    expect(first.headers["referrer-policy"]).toBe("same-origin")

    const again = await request(url)
    expect(again.status).toBe(403)
    expect(again.headers["set-cookie"]).toBeUndefined()
    expect((await request(`${daemon.origin}/login?token=guessed`)).status).toBe(403)

    const dashboard = await request(`${daemon.origin}/`, { headers: { cookie: cookie.split(";")[0]! } })
    expect(dashboard.status).toBe(200)
    expect(dashboard.body).toContain("<h1>Dashboard</h1>")
    expect(dashboard.headers["content-security-policy"]).toContain("script-src 'self'")
  })

  it("pages need the session cookie", async () => {
    for (const page of ["/", "/images", "/vms", "/catalog", "/ops/abc"]) {
      const reply = await request(`${daemon.origin}${page}`)
      expect(reply.status, page).toBe(401)
      expect(reply.body).toContain("banger ui")
    }
    const forged = await request(`${daemon.origin}/`, { headers: { cookie: "banger_session=forged" } })
    expect(forged.status).toBe(401)
  })

  it("banger ui against a daemon without --web: one line saying how to start one", async () => {
    const other = path.join(work, "no-web")
    await withBangerDaemon(other, async () => {
      expectOneLineError(
        await runBanger(["--state-dir", other, "ui"]),
        /^banger: web UI not available: this daemon was started without --web/
      )
    })
  })

  it("a non-loopback --web address is refused unless --web-allow-remote is given", async () => {
    const port = await freePort()
    const other = path.join(work, "remote")
    const result = await runBanger(["--state-dir", other, "daemon", "--web", `0.0.0.0:${port}`], { timeoutMs: 30_000 })
    expectOneLineError(
      result,
      /^banger: daemon cannot start: --web: 0\.0\.0\.0 is not a loopback address.*--web-allow-remote/
    )
    expect(fs.existsSync(path.join(other, "banger.sock"))).toBe(false)
  })
})

describe("banger daemon --web: refused requests change nothing", () => {
  it("a POST without the cookie, with a wrong Origin or Host, or without the CSRF token", async () => {
    const { cookie, csrf } = await logIn(state, daemon.origin)
    const url = `${daemon.origin}/images/pull`
    const good = { cookie, origin: daemon.origin }
    const refused = [
      ["no cookie", { origin: daemon.origin }, pullForm(csrf)],
      ["wrong cookie", { origin: daemon.origin, cookie: "banger_session=forged" }, pullForm(csrf)],
      ["cross-site Origin", { ...good, origin: "http://evil.example" }, pullForm(csrf)],
      ["Origin on another port", { ...good, origin: `http://127.0.0.1:${daemon.port + 1}` }, pullForm(csrf)],
      ["no Origin", { cookie }, pullForm(csrf)],
      [
        "rebound Host",
        { ...good, host: `rebind.evil.example:${daemon.port}`, origin: `http://rebind.evil.example:${daemon.port}` },
        pullForm(csrf)
      ],
      ["no CSRF token", good, pullForm()],
      // (Its last character changed: replacing it with a fixed one would leave 1 token in 64 unchanged.)
      ["wrong CSRF token", good, pullForm(`${csrf.slice(0, -1)}${csrf.endsWith("x") ? "y" : "x"}`)]
    ] as const
    for (const [label, headers, form] of refused) {
      const reply = await request(url, { headers: { ...headers }, form })
      expect(reply.status, label).toBe(403)
      expect(reply.headers.location, label).toBeUndefined()
    }
    // A GET for a page under a rebound name is refused too: the page would carry a CSRF token.
    const rebound = await request(`${daemon.origin}/images`, {
      headers: { cookie, host: `rebind.evil.example:${daemon.port}` }
    })
    expect(rebound.status).toBe(403)
    expect(rebound.body).not.toContain("_csrf")
    expect(await operations()).toEqual([])

    // The same request with everything in order is accepted and begins the pull.
    const accepted = await request(url, { headers: good, form: pullForm(csrf) })
    expect(accepted.status).toBe(303)
    expect(accepted.headers.location).toMatch(/^\/ops\/[0-9a-f]{12}$/)
    const begun = await operations()
    expect(begun.map((op) => `/ops/${op.id}`)).toEqual([accepted.headers.location])
  })

  it("user input in an error comes back escaped, next to its field", async () => {
    const { cookie, csrf } = await logIn(state, daemon.origin)
    const hostileRef = `"><script>alert(1)</script>`
    const reply = await request(`${daemon.origin}/images/pull`, {
      headers: { cookie, origin: daemon.origin },
      form: { _csrf: csrf, reference: hostileRef }
    })
    expect(reply.status).toBe(400)
    expect(reply.body).not.toContain("<script>alert")
    expect(reply.body).toMatch(
      /<div class="field-error" id="error-reference">invalid image reference &quot;&quot;&gt;&lt;script&gt;alert\(1\)&lt;\/script&gt;&quot;/
    )
    // The form keeps what was typed, escaped in its value attribute.
    expect(reply.body).toContain('value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"')
  })
})
