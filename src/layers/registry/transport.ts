import type { HttpClientResponse } from "@effect/platform"
import { Effect } from "effect"
import { RegistryError } from "../../domain/errors.js"
import type { Authenticator } from "./auth.js"
import { drain, errorDetail, type Followed, type Http, type RegistryTarget, type RequestSpec } from "./http.js"

export interface Transport {
  /**
   * A GET against the registry with whatever authorization it asks for: the cached grant first,
   * then (on 401) one fresh grant, then a clear "unauthorized" instead of a retry loop.
   */
  readonly get: (
    target: RegistryTarget,
    url: string,
    headers: Readonly<Record<string, string>>
  ) => Effect.Effect<Followed, RegistryError>
}

export const makeTransport = (http: Http, auth: Authenticator, dockerConfigPath: string): Transport => {
  const send = (url: string, headers: Readonly<Record<string, string>>, authorization: string | undefined) =>
    ({
      method: "GET",
      url,
      headers: authorization === undefined ? headers : { ...headers, authorization }
    }) satisfies RequestSpec

  const get = Effect.fn("registry.get")(function* (
    target: RegistryTarget,
    url: string,
    headers: Readonly<Record<string, string>>
  ) {
    const first = yield* http.follow(target, send(url, headers, yield* auth.cached(target)))
    // A 401 from a redirect target (blob storage) is not the registry's challenge to answer.
    if (first.response.status !== 401 || first.url.origin !== new URL(target.baseUrl).origin) return first
    const challenge = first.response.headers["www-authenticate"]
    yield* drain(first.response)
    const grant = yield* auth.authorize(target, challenge)
    const second = yield* http.follow(target, send(url, headers, grant.header))
    if (second.response.status !== 401) return second
    const detail = errorDetail(yield* drain(second.response))
    yield* auth.forget(target)
    return yield* auth.unauthorized(
      target,
      (grant.withCredentials
        ? `${target.registry} rejected the credentials from ${dockerConfigPath}`
        : `${target.registry} requires authentication and ${dockerConfigPath} has no credentials for it (or the repository does not exist)`) +
        (detail ? ` (${detail})` : "")
    )
  })

  return { get }
}

/** Fails with a readable RegistryError for any status but the ones expected. */
export const expectStatus = (
  target: RegistryTarget,
  followed: Followed,
  what: string,
  expected: ReadonlyArray<number> = [200]
): Effect.Effect<HttpClientResponse.HttpClientResponse, RegistryError> => {
  const { response } = followed
  if (expected.includes(response.status)) return Effect.succeed(response)
  return Effect.flatMap(drain(response), (body) => {
    const detail = errorDetail(body)
    const suffix = detail ? ` (${detail})` : ""
    const reason =
      response.status === 404
        ? `not found: ${what}`
        : response.status === 401
          ? `unauthorized: ${followed.url.host} refused ${what}${suffix}`
          : response.status === 403
            ? `denied: ${followed.url.host} refused access to ${what}${suffix}`
            : `unexpected HTTP ${response.status} from ${followed.url.host} for ${what}${suffix}`
    return Effect.fail(new RegistryError({ reference: target.reference, reason }))
  })
}
