/**
 * A minimal Docker registry token server (the `auth.token` protocol) on 127.0.0.1, for tests. It
 * checks credentials, then signs an RS256 JWT whose `x5c` header carries the self-signed cert the
 * registry trusts through `rootcertbundle`.
 *
 * GET  /token?service=&scope=  with Basic credentials (or none: anonymous, granted nothing)
 * POST /token  form grant_type=refresh_token (refresh_token=...) or grant_type=password
 */

import { randomBytes, sign } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

export interface TokenServerOptions {
  readonly service: string
  readonly issuer: string
  /** PEM private key matching `certDer`. */
  readonly keyPem: string
  /** The DER certificate put in each token's `x5c`. */
  readonly certDer: Buffer
  /** username → password. */
  readonly users: Readonly<Record<string, string>>
  /** OAuth2 refresh tokens (docker's `identitytoken`) → username. */
  readonly refreshTokens?: Readonly<Record<string, string>>
  /** Token lifetime in seconds (default 300). */
  readonly expiresIn?: number
}

export interface TokenRequest {
  readonly method: string
  readonly grantType: string | undefined
  /** The authenticated user, or undefined for anonymous/rejected requests. */
  readonly user: string | undefined
  readonly scopes: ReadonlyArray<string>
}

export interface TokenServer {
  /** `http://127.0.0.1:<port>/token`: the realm to configure in the registry. */
  readonly realm: string
  readonly requests: Array<TokenRequest>
  readonly stop: () => Promise<void>
}

const base64url = (data: Buffer | string) => Buffer.from(data).toString("base64url")

const signJwt = (options: TokenServerOptions, subject: string, access: ReadonlyArray<unknown>) => {
  const now = Math.floor(Date.now() / 1000)
  const header = { typ: "JWT", alg: "RS256", x5c: [options.certDer.toString("base64")] }
  const claims = {
    iss: options.issuer,
    sub: subject,
    // A string: distribution 2.8 does not accept an audience list.
    aud: options.service,
    exp: now + (options.expiresIn ?? 300),
    nbf: now - 10,
    iat: now,
    jti: randomBytes(8).toString("hex"),
    access
  }
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`
  return `${input}.${base64url(sign("RSA-SHA256", Buffer.from(input), options.keyPem))}`
}

/** `repository:name:pull,push` → the JWT access entry granting exactly that. */
const accessFor = (scope: string) => {
  const parts = scope.split(":")
  if (parts.length < 3) return []
  const actions = parts.pop()!.split(",")
  const type = parts.shift()!
  return [{ type, name: parts.join(":"), actions }]
}

const readBody = (request: http.IncomingMessage) =>
  new Promise<string>((resolve, reject) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    request.on("error", reject)
  })

export const startTokenServer = async (options: TokenServerOptions): Promise<TokenServer> => {
  const requests: Array<TokenRequest> = []
  const server = http.createServer(async (request, response) => {
    const url = new URL(request.url ?? "/", "http://127.0.0.1")
    const reply = (status: number, body: unknown) => {
      response.writeHead(status, { "content-type": "application/json" })
      response.end(JSON.stringify(body))
    }
    if (url.pathname !== "/token") return reply(404, { error: "not found" })
    let user: string | undefined
    let authenticated = false
    let scopes = url.searchParams.getAll("scope").flatMap((scope) => scope.split(" "))
    let grantType: string | undefined
    if (request.method === "POST") {
      const form = new URLSearchParams(await readBody(request))
      grantType = form.get("grant_type") ?? undefined
      scopes = (form.get("scope") ?? "").split(" ").filter((scope) => scope !== "")
      if (grantType === "refresh_token") {
        user = options.refreshTokens?.[form.get("refresh_token") ?? ""]
      } else if (grantType === "password") {
        const name = form.get("username") ?? ""
        user = options.users[name] !== undefined && options.users[name] === form.get("password") ? name : undefined
      }
      authenticated = user !== undefined
    } else {
      const header = request.headers.authorization ?? ""
      if (header.startsWith("Basic ")) {
        const decoded = Buffer.from(header.slice(6), "base64").toString("utf8")
        const colon = decoded.indexOf(":")
        const name = decoded.slice(0, colon)
        if (colon > 0 && options.users[name] === decoded.slice(colon + 1)) user = name
        authenticated = user !== undefined
        if (!authenticated) {
          requests.push({ method: request.method ?? "", grantType, user: undefined, scopes })
          return reply(401, { errors: [{ code: "UNAUTHORIZED", message: "invalid username or password" }] })
        }
      }
    }
    requests.push({ method: request.method ?? "", grantType, user, scopes })
    if (request.method === "POST" && !authenticated) {
      return reply(401, { error: "invalid_grant" })
    }
    // Anonymous callers get a valid token that grants nothing, like Docker Hub for private repos.
    const access = authenticated ? scopes.flatMap(accessFor) : []
    const token = signJwt(options, user ?? "", access)
    reply(200, {
      token,
      access_token: token,
      expires_in: options.expiresIn ?? 300,
      issued_at: new Date().toISOString()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    realm: `http://127.0.0.1:${port}/token`,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}
