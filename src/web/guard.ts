import { type HttpApp, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Cause, Effect, Option } from "effect"
import { hostAllowed, originAllowed, type WebAddress } from "./address.js"
import { errorResponse, securityHeaders } from "./responses.js"
import { SESSION_COOKIE, sameSecret, WebSessions } from "./sessions.js"

const safeMethod = (method: string) => method === "GET" || method === "HEAD"

/**
 * Before any route: the Host header must name this server (no DNS rebinding), and an Origin, if
 * sent, must be this server; state-changing requests must send one. Every response gets the
 * security headers; an unknown path is a 404 page, a defect a 500 without details. (A wrapper of
 * the app, not a server middleware: the server writes the app's response before a middleware's.)
 */
export const guard =
  (listening: WebAddress) =>
  <E, R>(app: HttpApp.Default<E, R>) =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const host = request.headers.host
      const origin = request.headers.origin
      const response =
        host === undefined || !hostAllowed(host, listening)
          ? errorResponse(403, "Refused", "this server is not known by that Host name")
          : origin !== undefined
            ? originAllowed(origin, host)
              ? yield* app
              : errorResponse(403, "Refused", "cross-origin request")
            : safeMethod(request.method)
              ? yield* app
              : errorResponse(403, "Refused", "a state-changing request must carry its Origin")
      return HttpServerResponse.setHeaders(response, securityHeaders)
    }).pipe(
      Effect.catchAllCause((cause) => {
        // A browser that hung up: nothing to answer, nothing to log.
        if (Cause.isInterruptedOnly(cause)) return Effect.interrupt
        const failure = Cause.failureOption(cause)
        const notFound = Option.exists(
          failure,
          (error) => typeof error === "object" && error !== null && "_tag" in error && error._tag === "RouteNotFound"
        )
        if (notFound)
          return Effect.succeed(
            HttpServerResponse.setHeaders(errorResponse(404, "Not found", "no such page"), securityHeaders)
          )
        return Effect.logError("web request failed", cause).pipe(
          Effect.as(
            HttpServerResponse.setHeaders(
              errorResponse(500, "Error", "internal error (see the daemon log)"),
              securityHeaders
            )
          )
        )
      })
    )

/** The session the request's cookie names, if it is still valid. */
export const currentSession = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const sessions = yield* WebSessions
  const id = request.cookies[SESSION_COOKIE]
  return id === undefined ? Option.none() : yield* sessions.find(id)
})

export const csrfMatches = (given: string | undefined, expected: string) => sameSecret(given ?? "", expected)
