import { Clock, Effect } from "effect"
import { RegistryError } from "../../domain/errors.js"
import { type Credentials, loadCredentials } from "./docker-config.js"
import { allowsPlainHttp } from "./hosts.js"
import { drain, errorDetail, type Http, type RegistryTarget, readBody } from "./http.js"
import { type Challenge, parseWwwAuthenticate, preferredChallenge } from "./www-authenticate.js"

export interface AuthOptions {
  readonly dockerConfigPath: string
  readonly insecureRegistries: ReadonlyArray<string>
}

/** What was sent after a challenge, so a second 401 can say why it failed. */
export interface Grant {
  readonly header: string
  /** Whether configured credentials went into it (else it was an anonymous token). */
  readonly withCredentials: boolean
}

export const pullScope = (repository: string): string => `repository:${repository}:pull`

const cacheKey = (target: RegistryTarget) => `${target.host} ${pullScope(target.repository)}`

/** Tokens default to 60 s (distribution spec); renew a little early so one never expires mid-request. */
const tokenLifetimeMs = (expiresIn: unknown): number => {
  const seconds = typeof expiresIn === "number" && expiresIn > 0 ? expiresIn : 60
  return seconds * 1000 * 0.9
}

const basicHeader = (username: string, password: string) =>
  `Basic ${Buffer.from(`${username}:${password}`, "utf8").toString("base64")}`

/**
 * Answers registry auth challenges, caching what it obtains per registry host and pull scope for
 * the life of the client. Credentials come from the docker config, read when a challenge arrives.
 */
export const makeAuthenticator = (http: Http, options: AuthOptions) => {
  const cache = new Map<string, { readonly header: string; readonly expiresAt: number }>()

  const unauthorized = (target: RegistryTarget, reason: string) =>
    new RegistryError({ reference: target.reference, reason: `unauthorized: ${reason}` })

  const cached = (target: RegistryTarget): Effect.Effect<string | undefined> =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      const hit = cache.get(cacheKey(target))
      return hit !== undefined && hit.expiresAt > now ? hit.header : undefined
    })

  const forget = (target: RegistryTarget): Effect.Effect<void> => Effect.sync(() => cache.delete(cacheKey(target)))

  const fetchToken = Effect.fn("registry.fetchToken")(function* (
    target: RegistryTarget,
    challenge: Challenge,
    credentials: Credentials | undefined
  ) {
    const realm = challenge.params.realm
    const realmUrl = realm === undefined ? undefined : URL.canParse(realm) ? new URL(realm) : undefined
    if (realmUrl === undefined || (realmUrl.protocol !== "https:" && realmUrl.protocol !== "http:")) {
      return yield* unauthorized(target, `${target.host} sent a bearer challenge without a usable realm`)
    }
    if (
      credentials !== undefined &&
      realmUrl.protocol === "http:" &&
      !allowsPlainHttp(realmUrl.host, options.insecureRegistries)
    ) {
      return yield* unauthorized(target, `refusing to send credentials to the plain-HTTP token realm ${realm}`)
    }
    const scope = pullScope(target.repository)
    const service = challenge.params.service
    const { response } =
      credentials?._tag === "IdentityToken"
        ? yield* http.follow(target, {
            method: "POST",
            url: realmUrl.toString(),
            headers: { accept: "application/json" },
            form: {
              grant_type: "refresh_token",
              refresh_token: credentials.token,
              client_id: "banger",
              scope,
              ...(service !== undefined ? { service } : {})
            }
          })
        : yield* Effect.suspend(() => {
            const url = new URL(realmUrl)
            if (service !== undefined) url.searchParams.set("service", service)
            url.searchParams.set("scope", scope)
            return http.follow(target, {
              method: "GET",
              url: url.toString(),
              headers: {
                accept: "application/json",
                ...(credentials?._tag === "Basic"
                  ? { authorization: basicHeader(credentials.username, credentials.password) }
                  : {})
              }
            })
          })
    if (response.status === 401 || response.status === 403) {
      const detail = errorDetail(yield* drain(response))
      return yield* unauthorized(
        target,
        `token server ${realmUrl.host} rejected the credentials for ${target.registry} from ${options.dockerConfigPath}${detail ? ` (${detail})` : ""}`
      )
    }
    if (response.status !== 200) {
      const detail = errorDetail(yield* drain(response))
      return yield* new RegistryError({
        reference: target.reference,
        reason: `token server ${realmUrl.host} answered HTTP ${response.status}${detail ? ` (${detail})` : ""}`
      })
    }
    const body = yield* readBody(response, 1 << 20, "token response", target.reference, http.idleTimeout).pipe(
      Effect.catchTag("Transient", (error) => new RegistryError({ reference: target.reference, reason: error.reason }))
    )
    const parsed = yield* Effect.try({
      try: () => JSON.parse(Buffer.from(body).toString("utf8")) as Record<string, unknown>,
      catch: () =>
        new RegistryError({ reference: target.reference, reason: `token server ${realmUrl.host} sent invalid JSON` })
    })
    const token = [parsed.token, parsed.access_token].find((value) => typeof value === "string" && value !== "")
    if (typeof token !== "string") {
      return yield* new RegistryError({
        reference: target.reference,
        reason: `token server ${realmUrl.host} sent no token`
      })
    }
    return { header: `Bearer ${token}`, lifetimeMs: tokenLifetimeMs(parsed.expires_in) }
  })

  /** Obtains fresh authorization for a 401's challenge; fails with a clear "unauthorized" when there is none to give. */
  const authorize = Effect.fn("registry.authorize")(function* (
    target: RegistryTarget,
    wwwAuthenticate: string | undefined
  ) {
    const challenge = preferredChallenge(parseWwwAuthenticate(wwwAuthenticate ?? ""))
    if (challenge === undefined) {
      return yield* unauthorized(
        target,
        `${target.host} demands authentication with ${wwwAuthenticate ? `an unsupported scheme (${wwwAuthenticate})` : "no WWW-Authenticate challenge"}`
      )
    }
    const credentials = yield* loadCredentials(options.dockerConfigPath, target.registry)
    let grant: { header: string; lifetimeMs: number }
    if (challenge.scheme === "basic") {
      if (credentials?._tag !== "Basic") {
        return yield* unauthorized(
          target,
          `${target.registry} requires a username and password; none found for it in ${options.dockerConfigPath} (run docker login ${target.registry})`
        )
      }
      grant = { header: basicHeader(credentials.username, credentials.password), lifetimeMs: Number.POSITIVE_INFINITY }
    } else if (credentials?._tag === "RegistryToken") {
      grant = { header: `Bearer ${credentials.token}`, lifetimeMs: Number.POSITIVE_INFINITY }
    } else {
      grant = yield* fetchToken(target, challenge, credentials)
    }
    const now = yield* Clock.currentTimeMillis
    cache.set(cacheKey(target), { header: grant.header, expiresAt: now + grant.lifetimeMs })
    return { header: grant.header, withCredentials: credentials !== undefined } satisfies Grant
  })

  return { cached, forget, authorize, unauthorized } as const
}

export type Authenticator = ReturnType<typeof makeAuthenticator>
