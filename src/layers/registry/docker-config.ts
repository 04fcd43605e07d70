import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { isDockerHub } from "./hosts.js"

/** What `docker login` leaves for one registry, in the order of preference used here. */
export type Credentials =
  /** OAuth2 refresh token: exchanged at the token realm (grant_type=refresh_token). */
  | { readonly _tag: "IdentityToken"; readonly username: string | undefined; readonly token: string }
  /** A ready bearer token, sent as is. */
  | { readonly _tag: "RegistryToken"; readonly token: string }
  | { readonly _tag: "Basic"; readonly username: string; readonly password: string }

/** `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export const dockerConfigPath = (env: NodeJS.ProcessEnv = process.env): string =>
  path.join(env.DOCKER_CONFIG || path.join(os.homedir(), ".docker"), "config.json")

/** `https://index.docker.io/v1/` → `index.docker.io`: keys may be URLs, with or without a path. */
const keyHost = (key: string): string =>
  key
    .trim()
    .replace(/^[a-z][a-z0-9+.-]*:\/\//i, "")
    .replace(/\/.*$/, "")
    .toLowerCase()

const asString = (value: unknown): string | undefined => (typeof value === "string" && value !== "" ? value : undefined)

const fromEntry = (entry: Record<string, unknown>): Credentials | undefined => {
  const identityToken = asString(entry.identitytoken)
  const registryToken = asString(entry.registrytoken)
  let username = asString(entry.username)
  let password = asString(entry.password)
  const auth = asString(entry.auth)
  if (auth !== undefined && (username === undefined || password === undefined)) {
    const decoded = Buffer.from(auth, "base64").toString("utf8")
    const colon = decoded.indexOf(":")
    if (colon > 0) {
      username = decoded.slice(0, colon)
      password = decoded.slice(colon + 1)
    }
  }
  if (identityToken !== undefined) return { _tag: "IdentityToken", username, token: identityToken }
  if (registryToken !== undefined) return { _tag: "RegistryToken", token: registryToken }
  if (username !== undefined && password !== undefined) return { _tag: "Basic", username, password }
  return undefined
}

/**
 * The credentials a parsed config.json holds for `registry` (as written in references: `docker.io`,
 * `localhost:5000`). Docker Hub is filed under `https://index.docker.io/v1/` by `docker login`, but
 * any of its names is accepted. An exact key match beats a match after normalizing URLs.
 */
export const findCredentials = (config: unknown, registry: string): Credentials | undefined => {
  if (typeof config !== "object" || config === null) return undefined
  const auths = (config as { auths?: unknown }).auths
  if (typeof auths !== "object" || auths === null) return undefined
  const wanted = registry.toLowerCase()
  const matches = (key: string) => {
    const host = keyHost(key)
    return isDockerHub(wanted) ? isDockerHub(host) : host === wanted
  }
  const entries = Object.entries(auths as Record<string, unknown>).filter(
    (pair): pair is [string, Record<string, unknown>] => typeof pair[1] === "object" && pair[1] !== null
  )
  const ordered = [
    ...entries.filter(([key]) => key === registry || (isDockerHub(wanted) && key === "https://index.docker.io/v1/")),
    ...entries.filter(([key]) => matches(key))
  ]
  for (const [, entry] of ordered) {
    const credentials = fromEntry(entry)
    if (credentials) return credentials
  }
  return undefined
}

/**
 * Reads the config file each time it is asked (only on an auth challenge), so a `docker login`
 * during a long-running daemon is picked up. A missing or unreadable file means no credentials:
 * anonymous pulls must not break because of it.
 */
export const loadCredentials = (configPath: string, registry: string): Effect.Effect<Credentials | undefined> =>
  Effect.tryPromise(() => fs.readFile(configPath, "utf8")).pipe(
    Effect.flatMap((text) => Effect.try(() => JSON.parse(text) as unknown)),
    Effect.map((config) => findCredentials(config, registry)),
    Effect.catchAll((error) => {
      const code = (error.error as NodeJS.ErrnoException | undefined)?.code
      return code === "ENOENT"
        ? Effect.succeed(undefined)
        : Effect.logWarning(`ignoring docker config ${configPath}: ${String(error.error)}`).pipe(Effect.as(undefined))
    })
  )
