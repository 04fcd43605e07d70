import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import { Clock, Context, Effect, Layer, Option } from "effect"
import { WebNotServing } from "../domain/errors.js"
import { WebLogin } from "../rpc/schemas.js"
import { browseAddress, hostPort, type WebConfig } from "./address.js"

/** A login URL is good for one use within this time. */
const LOGIN_TTL_MS = 5 * 60_000
/** A browser session lasts this long without a new `banger ui`. */
const SESSION_TTL_MS = 12 * 3_600_000

export const SESSION_COOKIE = "banger_session"

export interface Session {
  readonly csrf: string
  readonly expiresAt: number
  /**
   * The `PEER_HEADER` value of the socket client that asked for the login link, if any: the UI
   * acts for that user, so a host path typed into a form is read with their rights, not root's.
   */
  readonly peer: string | undefined
}

const token = () => randomBytes(24).toString("base64url")
// Secrets are looked up by their hash, so a lookup's timing says nothing about a stored secret.
const digest = (secret: string) => createHash("sha256").update(secret).digest("hex")

export const sameSecret = (given: string, expected: string) => {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

export interface WebSessionsShape {
  /** Null when this daemon was started without `--web`. */
  readonly config: WebConfig | null
  /** For `banger ui`: a URL carrying a fresh one-time login token, for the client `peer` (its header value). */
  readonly issueLogin: (peer: string | undefined) => Effect.Effect<WebLogin, WebNotServing>
  /** Trades a login token (once) for a new session id. */
  readonly redeem: (loginToken: string) => Effect.Effect<Option.Option<string>>
  readonly find: (sessionId: string) => Effect.Effect<Option.Option<Session>>
}

/** The web UI's login tokens and browser sessions, in memory: a daemon restart logs everyone out. */
export class WebSessions extends Context.Tag("banger/WebSessions")<WebSessions, WebSessionsShape>() {
  static readonly layer = (config: WebConfig | null) =>
    Layer.sync(WebSessions, () => {
      const logins = new Map<string, { readonly expiresAt: number; readonly peer: string | undefined }>()
      const sessions = new Map<string, Session>()
      const sweep = (now: number) => {
        for (const [key, login] of logins) if (login.expiresAt <= now) logins.delete(key)
        for (const [key, session] of sessions) if (session.expiresAt <= now) sessions.delete(key)
      }
      return {
        config,
        issueLogin: (peer) =>
          Effect.gen(function* () {
            if (config === null)
              return yield* new WebNotServing({
                reason: "this daemon was started without --web (restart it with: banger daemon --web)"
              })
            const now = yield* Clock.currentTimeMillis
            sweep(now)
            const secret = token()
            logins.set(digest(secret), { expiresAt: now + LOGIN_TTL_MS, peer })
            return new WebLogin({
              url: `http://${hostPort(browseAddress(config))}/login?token=${secret}`,
              expiresAt: new Date(now + LOGIN_TTL_MS).toISOString()
            })
          }),
        redeem: (loginToken) =>
          Effect.map(Clock.currentTimeMillis, (now) => {
            sweep(now)
            const key = digest(loginToken)
            const login = logins.get(key)
            if (login === undefined) return Option.none()
            logins.delete(key)
            const id = token()
            sessions.set(digest(id), { csrf: token(), expiresAt: now + SESSION_TTL_MS, peer: login.peer })
            return Option.some(id)
          }),
        find: (sessionId) =>
          Effect.map(Clock.currentTimeMillis, (now) => {
            const session = sessions.get(digest(sessionId))
            return session !== undefined && session.expiresAt > now ? Option.some(session) : Option.none()
          })
      }
    })
}
