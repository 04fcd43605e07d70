/**
 * The web UI under test: a real `banger daemon --web` on a free loopback port, login URLs from
 * the real `banger ui`, and raw HTTP requests whose Host and Origin headers the test chooses.
 */
import * as http from "node:http"
import * as net from "node:net"
import { expect } from "vitest"
import { type CliOptions, type RunningDaemon, runBanger, startBangerDaemon } from "./banger-cli.js"

export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

export interface WebDaemon extends RunningDaemon {
  readonly port: number
  /** `http://127.0.0.1:<port>` */
  readonly origin: string
}

export const startWebDaemon = async (state: string, options: CliOptions = {}): Promise<WebDaemon> => {
  const port = await freePort()
  const daemon = await startBangerDaemon(state, {
    ...options,
    extraArgs: ["--web", `127.0.0.1:${port}`, ...(options.extraArgs ?? [])]
  })
  return { ...daemon, port, origin: `http://127.0.0.1:${port}` }
}

/** A fresh one-time login URL, as `banger ui` prints it (no browser: DISPLAY unset). */
export const loginUrl = async (state: string): Promise<string> => {
  const result = await runBanger(["--state-dir", state, "ui"], {
    env: { DISPLAY: undefined, WAYLAND_DISPLAY: undefined }
  })
  expect(result.stderr).toBe("")
  expect(result.code).toBe(0)
  return result.stdout.trim()
}

export interface Reply {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

/** One HTTP request with exactly these headers (fetch would not let a test set Host). */
export const request = (
  url: string,
  options: {
    readonly method?: string
    readonly headers?: Record<string, string>
    readonly form?: Record<string, string>
  } = {}
): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const body = options.form === undefined ? undefined : new URLSearchParams(options.form).toString()
    const target = new URL(url)
    const out = http.request(
      {
        host: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        method: options.method ?? (body === undefined ? "GET" : "POST"),
        headers: {
          host: target.host,
          ...(body === undefined
            ? {}
            : {
                "content-type": "application/x-www-form-urlencoded",
                "content-length": String(Buffer.byteLength(body))
              }),
          ...options.headers
        }
      },
      (response) => {
        let text = ""
        response.setEncoding("utf8")
        response.on("data", (chunk: string) => {
          text += chunk
        })
        response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }))
      }
    )
    out.on("error", reject)
    out.end(body)
  })

/** Logs in with a fresh token: the session cookie (`name=value`) and the CSRF token its pages carry. */
export const logIn = async (state: string, origin: string) => {
  const login = await request(await loginUrl(state))
  expect(login.status).toBe(303)
  const cookie = String(login.headers["set-cookie"]?.[0] ?? "").split(";")[0]!
  const page = await request(`${origin}/images`, { headers: { cookie } })
  expect(page.status).toBe(200)
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1]
  expect(csrf).toBeDefined()
  return { cookie, csrf: csrf! }
}
