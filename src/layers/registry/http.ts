import { HttpClient, HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import type { HttpClientError } from "@effect/platform/HttpClientError"
import { Data, Duration, Effect, Option, Schedule, Stream } from "effect"
import { RegistryError } from "../../domain/errors.js"
import { reportRetry } from "./retry-report.js"

/** One repository on one registry, and the reference string errors are reported against. */
export interface RegistryTarget {
  /** The normalized reference, for messages. */
  readonly reference: string
  /** The registry as named in the reference (`docker.io`): the key for credentials. */
  readonly registry: string
  /** The API host (`registry-1.docker.io`). */
  readonly host: string
  /** `scheme://host`. */
  readonly baseUrl: string
  readonly repository: string
}

export interface RequestSpec {
  readonly method: "GET" | "HEAD" | "POST"
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  /** Form-encoded body (token requests). */
  readonly form?: Readonly<Record<string, string>> | undefined
}

export interface HttpOptions {
  /** Tries per request, counting the first. */
  readonly attempts: number
  readonly baseDelay: Duration.DurationInput
  /** Until the response headers arrive. */
  readonly requestTimeout: Duration.DurationInput
  readonly maxRedirects: number
  /** Longest silence inside a response body (token, manifest, config) before it counts as dropped. */
  readonly idleTimeout: Duration.DurationInput
}

/** A failure worth trying again: connection trouble, 5xx, 429. Never leaves this layer. */
export class Transient extends Data.TaggedError("Transient")<{ readonly reason: string }> {}

export interface Followed {
  readonly response: HttpClientResponse.HttpClientResponse
  /** Where the response finally came from, after redirects. */
  readonly url: URL
}

/** Node and undici bury the errno under `cause` (or several, for happy-eyeballs connects). */
const errorCodes = (error: unknown, depth = 0): ReadonlyArray<string> => {
  if (typeof error !== "object" || error === null || depth > 5) return []
  const own = typeof (error as { code?: unknown }).code === "string" ? [(error as { code: string }).code] : []
  const nested = (error as { errors?: unknown }).errors
  return [
    ...own,
    ...errorCodes((error as { cause?: unknown }).cause, depth + 1),
    ...(Array.isArray(nested) ? nested.flatMap((inner) => errorCodes(inner, depth + 1)) : [])
  ]
}

const innermostMessage = (error: unknown): string => {
  let current = error
  for (let depth = 0; depth < 5; depth++) {
    const cause = (current as { cause?: unknown } | undefined)?.cause
    if (typeof cause !== "object" || cause === null) break
    current = cause
  }
  return current instanceof Error ? current.message : String(current)
}

/** Turns a transport failure into a message naming the host, and decides whether to retry it. */
export const classifyTransportError = (
  error: HttpClientError,
  host: string
): Transient | { readonly reason: string } => {
  const codes = errorCodes(error.cause)
  const has = (code: string) => codes.includes(code)
  if (has("ECONNREFUSED")) return new Transient({ reason: `connection refused by ${host}` })
  if (has("ENOTFOUND")) return { reason: `cannot resolve host ${host}` }
  if (codes.some((code) => /CERT|SELF_SIGNED|UNABLE_TO_|ERR_TLS|ERR_SSL|EPROTO/.test(code))) {
    return { reason: `TLS failure talking to ${host}: ${innermostMessage(error.cause)}` }
  }
  const detail = codes.length > 0 ? codes[0]! : innermostMessage(error.cause)
  return new Transient({ reason: `connection to ${host} failed (${detail})` })
}

const fromTransportError = (
  target: RegistryTarget,
  error: HttpClientError,
  host: string
): Effect.Effect<never, Transient | RegistryError> => {
  const classified = classifyTransportError(error, host)
  return Effect.fail(
    classified instanceof Transient
      ? classified
      : new RegistryError({ reference: target.reference, reason: classified.reason })
  )
}

const redirectStatuses: ReadonlySet<number> = new Set([301, 302, 303, 307, 308])

/**
 * Reads at most `limit` bytes of a body, failing past it: registries are not trusted to be small.
 * A body that sends nothing for `idleTimeout` is a Transient failure (retried by the caller). These
 * bodies are small, so a per-chunk timeout is affordable here (unlike blob bodies: blob-stream.ts).
 */
export const readBody = (
  response: HttpClientResponse.HttpClientResponse,
  limit: number,
  what: string,
  reference: string,
  idleTimeout: Duration.DurationInput
): Effect.Effect<Uint8Array, RegistryError | Transient> => {
  const declared = Number(response.headers["content-length"])
  if (Number.isFinite(declared) && declared > limit) {
    return Effect.fail(
      new RegistryError({ reference, reason: `${what} is ${declared} bytes, over the ${limit} limit` })
    )
  }
  return Effect.suspend(() => {
    const chunks: Array<Uint8Array> = []
    let size = 0
    return response.stream.pipe(
      Stream.mapError((error) => new Transient({ reason: `reading ${what} failed: ${innermostMessage(error.cause)}` })),
      Stream.timeoutFail(
        () => new Transient({ reason: `no data for ${Duration.format(idleTimeout)} reading ${what}` }),
        idleTimeout
      ),
      Stream.runForEach((chunk) => {
        chunks.push(chunk)
        size += chunk.length
        return size > limit
          ? Effect.fail(new RegistryError({ reference, reason: `${what} is over the ${limit} byte limit` }))
          : Effect.void
      }),
      Effect.map(() => new Uint8Array(Buffer.concat(chunks)))
    )
  })
}

/** Reads a little of a body we do not need (so the connection can be reused) and never fails. */
export const drain = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<string> =>
  response.stream.pipe(
    Stream.take(16),
    Stream.runFold("", (text, chunk) => (text.length < 4096 ? text + Buffer.from(chunk).toString("utf8") : text)),
    Effect.timeout("5 seconds"),
    Effect.orElseSucceed(() => "")
  )

/** `code: message` from a registry's JSON error body, when there is one. */
export const errorDetail = (body: string): string => {
  try {
    const parsed = JSON.parse(body) as { errors?: Array<{ code?: unknown; message?: unknown }> }
    const first = parsed.errors?.[0]
    if (first) return [first.code, first.message].filter((part) => typeof part === "string").join(": ")
  } catch {
    // Not JSON: fall through to the raw text.
  }
  return body.trim().slice(0, 200)
}

const toRequest = (spec: RequestSpec): HttpClientRequest.HttpClientRequest => {
  const base = HttpClientRequest.make(spec.method)(spec.url, { headers: spec.headers })
  return spec.form ? HttpClientRequest.bodyUrlParams(base, spec.form) : base
}

/**
 * Plain HTTP for the registry client: bounded retries with exponential backoff on transient
 * failures, and redirects followed here rather than by the HTTP stack, so Authorization is dropped
 * the moment a redirect leaves the origin (presigned blob URLs reject a second credential).
 */
export const makeHttp = Effect.fn("makeHttp")(function* (options: HttpOptions) {
  const client = (yield* HttpClient.HttpClient).pipe(HttpClient.withTracerPropagation(false))
  const schedule = Schedule.exponential(options.baseDelay, 2).pipe(
    Schedule.jittered,
    Schedule.intersect(Schedule.recurs(Math.max(0, options.attempts - 1)))
  )

  /** One request and its retries; any status comes back except 5xx/429 once retries run out. */
  const exchange = (
    target: RegistryTarget,
    spec: RequestSpec
  ): Effect.Effect<HttpClientResponse.HttpClientResponse, RegistryError> => {
    const host = new URL(spec.url).host
    let attempt = 0
    return Effect.suspend(() => {
      attempt++
      return client.execute(toRequest(spec))
    }).pipe(
      Effect.timeoutFail({
        duration: options.requestTimeout,
        onTimeout: () =>
          new Transient({ reason: `no response from ${host} within ${Duration.format(options.requestTimeout)}` })
      }),
      Effect.catchTags({
        RequestError: (error) => fromTransportError(target, error, host),
        ResponseError: (error) => fromTransportError(target, error, host)
      }),
      Effect.flatMap((response) =>
        response.status >= 500 || response.status === 429
          ? Effect.flatMap(drain(response), (body) => {
              const detail = errorDetail(body)
              return Effect.fail(
                new Transient({ reason: `${host} answered HTTP ${response.status}${detail ? ` (${detail})` : ""}` })
              )
            })
          : Effect.succeed(response)
      ),
      Effect.tapError((error) =>
        error._tag === "Transient" && attempt < options.attempts
          ? reportRetry({ reason: error.reason, attempt: attempt + 1, of: options.attempts })
          : Effect.void
      ),
      Effect.retry({ schedule, while: (error) => error._tag === "Transient" }),
      Effect.catchTag("Transient", (error) =>
        Effect.fail(
          new RegistryError({
            reference: target.reference,
            reason: `${error.reason} (gave up after ${options.attempts} attempts)`
          })
        )
      )
    )
  }

  const follow = (target: RegistryTarget, spec: RequestSpec): Effect.Effect<Followed, RegistryError> => {
    const loop = (current: RequestSpec, hops: number): Effect.Effect<Followed, RegistryError> =>
      Effect.flatMap(exchange(target, current), (response) => {
        const url = new URL(current.url)
        const location = response.headers.location
        if (!redirectStatuses.has(response.status) || location === undefined) {
          return Effect.succeed({ response, url })
        }
        return Effect.zipRight(
          drain(response),
          Effect.suspend(() => {
            if (hops >= options.maxRedirects) {
              return Effect.fail(
                new RegistryError({ reference: target.reference, reason: `too many redirects (last: ${url.host})` })
              )
            }
            const next = Option.getOrUndefined(Option.liftThrowable(() => new URL(location, url))())
            if (next === undefined || (next.protocol !== "http:" && next.protocol !== "https:")) {
              return Effect.fail(
                new RegistryError({ reference: target.reference, reason: `${url.host} redirected to "${location}"` })
              )
            }
            // Credentials stay with the origin that asked for them.
            const sameOrigin = next.origin === url.origin
            const headers = Object.fromEntries(
              Object.entries(current.headers).filter(([name]) => sameOrigin || name.toLowerCase() !== "authorization")
            )
            const keepsMethod = response.status === 307 || response.status === 308
            return loop(
              {
                method: keepsMethod || current.method === "HEAD" ? current.method : "GET",
                url: next.toString(),
                headers,
                form: keepsMethod ? current.form : undefined
              },
              hops + 1
            )
          })
        )
      })
    return loop(spec, 0)
  }

  return { exchange, follow, idleTimeout: options.idleTimeout } as const
})

export type Http = Effect.Effect.Success<ReturnType<typeof makeHttp>>
