/**
 * Loopback HTTP proxies in front of a test registry, for failure tests. Everything is forwarded
 * verbatim except blob GETs (`/v2/<repo>/blobs/<digest>`), which a `fault` can break:
 *
 * - "redirect": answers 307 to a second loopback server (another port, so another host) that
 *   serves the bytes like a presigned storage URL and refuses any request carrying Authorization.
 * - "cut":      sends the headers and part of the body, then destroys the connection.
 * - "stall":    sends part of the body, then goes silent with the connection open.
 * - "corrupt":  flips one byte in the middle of the body (same length).
 * - "trickle":  sends the whole body, but in `trickleParts` pieces `trickleIntervalMs` apart.
 * - "unavailable": answers 503 without asking the registry.
 *
 * `faultCount` limits how many blob GETs are broken (the rest pass through; default: all).
 * `requests` records every request either server received, to count them or check headers.
 *
 *   const proxy = await startRegistryProxy(registry, { fault: "cut", faultCount: 1 })
 *   ... imageRef(proxy, "test/app") ...
 *   await proxy.stop()
 */

import { randomBytes } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

export type BlobFault = "none" | "redirect" | "cut" | "stall" | "corrupt" | "trickle" | "unavailable"

export interface ProxyOptions {
  readonly fault?: BlobFault
  /** How many blob GETs get the fault before the proxy behaves (default: every one). */
  readonly faultCount?: number
  /** Only blobs with these digests get the fault, e.g. one layer but not the config (default: any). */
  readonly faultDigests?: ReadonlyArray<string>
  /** For "cut" and "stall": bytes of body sent first (default: half). */
  readonly faultAfterBytes?: number
  /** For "trickle": how many pieces (default 8) and the pause before each but the first (default 100 ms). */
  readonly trickleParts?: number
  readonly trickleIntervalMs?: number
  /**
   * Manifest GETs: return replacement bytes to serve instead of the registry's (a lying mirror),
   * or undefined to pass the original through. `reference` is the tag or digest requested.
   */
  readonly replaceManifest?: (reference: string, original: Buffer) => Buffer | undefined
}

export interface ProxyRequest {
  /** "proxy" for the registry front, "storage" for the redirect target. */
  readonly server: "proxy" | "storage"
  readonly method: string
  readonly path: string
  readonly authorization: string | undefined
  readonly range: string | undefined
  /** True when this blob GET was given the fault. */
  readonly faulted: boolean
  /** Passed-through responses: the upstream status, and body bytes sent so far. */
  status?: number
  bytesSent?: number
}

export interface RegistryProxy {
  /** `127.0.0.1:<port>`: use as the registry part of references. */
  readonly host: string
  readonly url: string
  /** "redirect" only: the storage server's `127.0.0.1:<port>`. */
  readonly storageHost: string | undefined
  readonly requests: Array<ProxyRequest>
  /** Blob GETs the proxy saw (faulted or not). */
  readonly blobGets: () => number
  readonly stop: () => Promise<void>
}

const blobPath = /^\/v2\/.+\/blobs\/((?:sha256|sha512):[a-f0-9]+)$/
const manifestPath = /^\/v2\/.+\/manifests\/([^/]+)$/

const listen = async (server: http.Server) => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return (server.address() as AddressInfo).port
}

const close = (server: http.Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  })

/** `bytes=a-` / `bytes=a-b` on a buffer: [start, end] inclusive, or undefined if unusable. */
const parseRange = (header: string | undefined, length: number): [number, number] | undefined => {
  const match = /^bytes=(\d+)-(\d*)$/.exec(header ?? "")
  if (!match) return undefined
  const start = Number(match[1])
  const end = match[2] ? Math.min(Number(match[2]), length - 1) : length - 1
  return start < length && start <= end ? [start, end] : undefined
}

export const startRegistryProxy = async (
  upstream: { readonly url: string } | string,
  options: ProxyOptions = {}
): Promise<RegistryProxy> => {
  const upstreamUrl = new URL(typeof upstream === "string" ? upstream : upstream.url)
  const fault = options.fault ?? "none"
  let faultsLeft = options.faultCount ?? Number.POSITIVE_INFINITY
  const requests: Array<ProxyRequest> = []
  const stored = new Map<string, Buffer>()
  const sockets = new Set<import("node:net").Socket>()
  const stalled = new Set<http.ServerResponse>()

  const forward = (request: http.IncomingMessage, headers: http.IncomingHttpHeaders = request.headers) =>
    new Promise<http.IncomingMessage>((resolve, reject) => {
      const out = http.request(
        {
          host: upstreamUrl.hostname,
          port: upstreamUrl.port,
          method: request.method,
          path: request.url,
          headers: { ...headers, host: upstreamUrl.host }
        },
        resolve
      )
      out.on("error", reject)
      request.pipe(out)
    })

  const readAll = (stream: http.IncomingMessage) =>
    new Promise<Buffer>((resolve, reject) => {
      const chunks: Array<Buffer> = []
      stream.on("data", (chunk: Buffer) => chunks.push(chunk))
      stream.on("end", () => resolve(Buffer.concat(chunks)))
      stream.on("error", reject)
    })

  // The redirect target: serves what the proxy stored, like S3 behind a presigned URL.
  const storage = http.createServer((request, response) => {
    const key = new URL(request.url ?? "/", "http://x").pathname.replace(/^\/storage\//, "")
    requests.push({
      server: "storage",
      method: request.method ?? "",
      path: request.url ?? "",
      authorization: request.headers.authorization,
      range: request.headers.range,
      faulted: false
    })
    const body = stored.get(key)
    if (request.headers.authorization !== undefined) {
      response.writeHead(400, { "content-type": "text/plain" })
      return response.end("only one auth mechanism allowed: presigned URL, and an Authorization header was sent")
    }
    if (body === undefined) {
      response.writeHead(404)
      return response.end()
    }
    const range = parseRange(request.headers.range, body.length)
    if (range) {
      response.writeHead(206, {
        "content-length": range[1] - range[0] + 1,
        "content-range": `bytes ${range[0]}-${range[1]}/${body.length}`
      })
      return response.end(request.method === "HEAD" ? undefined : body.subarray(range[0], range[1] + 1))
    }
    response.writeHead(200, { "content-length": body.length, "content-type": "application/octet-stream" })
    response.end(request.method === "HEAD" ? undefined : body)
  })
  const storagePort = fault === "redirect" ? await listen(storage) : undefined

  const proxy = http.createServer(async (request, response) => {
    const blob = blobPath.exec(request.url?.split("?")[0] ?? "")
    const isBlobGet = request.method === "GET" && blob !== null
    const chosen = options.faultDigests === undefined || options.faultDigests.includes(blob?.[1] ?? "")
    const faulted = isBlobGet && chosen && fault !== "none" && faultsLeft > 0
    if (faulted) faultsLeft--
    const record: ProxyRequest = {
      server: "proxy",
      method: request.method ?? "",
      path: request.url ?? "",
      authorization: request.headers.authorization,
      range: request.headers.range,
      faulted
    }
    requests.push(record)
    try {
      if (faulted && fault === "unavailable") {
        response.writeHead(503, { "content-type": "application/json" })
        return response.end(JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: "try again later" }] }))
      }
      if (faulted && fault === "redirect") {
        // Fetch the whole blob with the caller's credentials, then send it elsewhere.
        const { range: _range, ...headers } = request.headers
        const upstreamResponse = await forward(request, headers)
        const body = await readAll(upstreamResponse)
        if (upstreamResponse.statusCode !== 200) {
          response.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.headers)
          return response.end(body)
        }
        const key = randomBytes(8).toString("hex")
        stored.set(key, body)
        response.writeHead(307, {
          location: `http://127.0.0.1:${storagePort}/storage/${key}?X-Amz-Signature=${randomBytes(8).toString("hex")}`,
          "content-length": 0
        })
        return response.end()
      }
      const manifestReference = manifestPath.exec(request.url?.split("?")[0] ?? "")?.[1]
      if (request.method === "GET" && manifestReference !== undefined && options.replaceManifest) {
        const upstreamResponse = await forward(request)
        const original = await readAll(upstreamResponse)
        const replacement =
          upstreamResponse.statusCode === 200 ? options.replaceManifest(manifestReference, original) : undefined
        const body = replacement ?? original
        response.writeHead(upstreamResponse.statusCode ?? 502, {
          ...upstreamResponse.headers,
          "content-length": String(body.length)
        })
        return response.end(body)
      }
      const upstreamResponse = await forward(request)
      if (!faulted || (upstreamResponse.statusCode ?? 0) >= 300) {
        record.status = upstreamResponse.statusCode ?? 502
        record.bytesSent = 0
        upstreamResponse.on("data", (chunk: Buffer) => (record.bytesSent! += chunk.length))
        response.writeHead(record.status, upstreamResponse.headers)
        upstreamResponse.pipe(response)
        return
      }
      const body = await readAll(upstreamResponse)
      if (fault === "corrupt") {
        const corrupt = Buffer.from(body)
        if (corrupt.length > 0) corrupt[corrupt.length >> 1] = corrupt[corrupt.length >> 1]! ^ 0xff
        response.writeHead(upstreamResponse.statusCode ?? 200, upstreamResponse.headers)
        return response.end(corrupt)
      }
      if (fault === "trickle") {
        const parts = options.trickleParts ?? 8
        response.writeHead(upstreamResponse.statusCode ?? 200, upstreamResponse.headers)
        for (let part = 0; part < parts; part++) {
          if (part > 0) await new Promise((resolve) => setTimeout(resolve, options.trickleIntervalMs ?? 100))
          response.write(
            body.subarray(Math.floor((body.length * part) / parts), Math.floor((body.length * (part + 1)) / parts))
          )
        }
        return response.end()
      }
      // cut / stall: full-length headers, partial body.
      const partial = Math.min(options.faultAfterBytes ?? body.length >> 1, body.length)
      response.writeHead(upstreamResponse.statusCode ?? 200, upstreamResponse.headers)
      response.write(body.subarray(0, partial))
      if (fault === "stall") {
        stalled.add(response)
        return
      }
      // Let the partial body reach the client before the connection dies.
      setTimeout(() => request.socket.destroy(), 50)
    } catch (error) {
      response.writeHead(502)
      response.end(String(error))
    }
  })
  proxy.on("connection", (socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })
  const port = await listen(proxy)

  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    storageHost: storagePort === undefined ? undefined : `127.0.0.1:${storagePort}`,
    requests,
    blobGets: () =>
      requests.filter((entry) => entry.server === "proxy" && blobPath.test(entry.path.split("?")[0]!)).length,
    stop: async () => {
      for (const response of stalled) response.destroy()
      for (const socket of sockets) socket.destroy()
      await close(proxy)
      if (storagePort !== undefined) await close(storage)
    }
  }
}
