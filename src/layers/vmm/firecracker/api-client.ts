/** Firecracker's REST API: HTTP/1.1 with JSON bodies over its Unix socket. */
import * as http from "node:http"
import { Duration, Effect } from "effect"
import { VmmError } from "../../../domain/errors.js"

export interface ApiResponse {
  readonly status: number
  readonly body: string
}

const API_TIMEOUT_MS = 10_000

const request = (socketPath: string, method: string, path: string, body?: unknown) =>
  Effect.async<ApiResponse, string>((resume) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = http.request(
      {
        socketPath,
        method,
        path,
        headers: {
          Accept: "application/json",
          ...(payload === undefined
            ? {}
            : { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) })
        }
      },
      (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (chunk: Buffer) => chunks.push(chunk))
        res.on("end", () =>
          resume(Effect.succeed({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
        )
        res.on("error", (error) => resume(Effect.fail(error.message)))
      }
    )
    req.on("error", (error) => resume(Effect.fail(error.message)))
    req.end(payload)
    return Effect.sync(() => req.destroy())
  })

/** Firecracker's error body is `{"fault_message": "..."}`; anything else is quoted as it came. */
export const faultMessage = (body: string): string => {
  try {
    const parsed: unknown = JSON.parse(body)
    if (typeof parsed === "object" && parsed !== null && "fault_message" in parsed) {
      const message = (parsed as { fault_message: unknown }).fault_message
      if (typeof message === "string") return message
    }
  } catch {
    // not JSON: quoted below
  }
  return body.trim() === "" ? "no body" : body.trim()
}

const REFUSED = "Firecracker refused"

/** Whether the error is Firecracker's own answer (a 4xx with its fault), not a transport failure. */
export const isRefusal = (error: VmmError) => error.reason.startsWith(REFUSED)

export interface FirecrackerApi {
  /** A request that must answer 204; a fault becomes a VmmError quoting `fault_message` verbatim. */
  readonly put: (path: string, body: unknown) => Effect.Effect<void, VmmError>
  /** GET returning parsed JSON (200). */
  readonly get: (path: string) => Effect.Effect<unknown, VmmError>
}

export const firecrackerApi = (vmId: string, socketPath: string, timeoutMs = API_TIMEOUT_MS): FirecrackerApi => {
  const call = (method: string, path: string, body?: unknown) =>
    request(socketPath, method, path, body).pipe(
      Effect.timeoutFail({ duration: Duration.millis(timeoutMs), onTimeout: () => `no answer within ${timeoutMs} ms` }),
      Effect.mapError((reason) => new VmmError({ vmId, reason: `Firecracker API ${method} ${path}: ${reason}` }))
    )
  return {
    put: (path, body) =>
      call("PUT", path, body).pipe(
        Effect.flatMap((response) =>
          response.status === 204
            ? Effect.void
            : Effect.fail(
                new VmmError({
                  vmId,
                  reason: `${REFUSED} PUT ${path} (${response.status}): ${faultMessage(response.body)}`
                })
              )
        )
      ),
    get: (path) =>
      call("GET", path).pipe(
        Effect.flatMap((response) =>
          response.status === 200
            ? Effect.try({
                try: () => JSON.parse(response.body) as unknown,
                catch: () => new VmmError({ vmId, reason: `Firecracker GET ${path}: not JSON: ${response.body}` })
              })
            : Effect.fail(
                new VmmError({
                  vmId,
                  reason: `${REFUSED} GET ${path} (${response.status}): ${faultMessage(response.body)}`
                })
              )
        )
      )
  }
}
