/**
 * A misbehaving registry for fault tests: plain node:http on loopback, a random port, serving one
 * single-layer image per fault. The repository names the fault (`127.0.0.1:PORT/stall-mid:1`), so
 * every case is its own endpoint and its own blobs (no test finds another's layer in the cache).
 *
 *   const bad = await startBadRegistry({ layerBytes: 256 << 10, pieceIntervalMs: 400 })
 *   ... `${bad.host}/${fault}:1` ...
 *   await bad.stop()
 *
 * Faults (on the layer blob unless said otherwise):
 * - ok:             behaves.
 * - stall-headers:  sends the headers, then nothing, on every request.
 * - stall-mid:      sends part of what was asked for, then nothing, on every request.
 * - stall-once:     the first request stalls mid-body; Range resumes are served.
 * - slow:           the whole body in `slowPieces` pieces `pieceIntervalMs` apart (steady, never idle).
 * - cut:            every request ends (socket destroyed) at the same byte of the blob.
 * - long:           the body is longer than the manifest declares.
 * - short:          a complete response shorter than the manifest declares.
 * - too-many-requests: the manifest answers 429 with Retry-After: 1 once, then behaves.
 * - unavailable:    the layer answers 503 twice, then behaves.
 * - stall-manifest-once: the first manifest response sends its headers, then nothing.
 * - huge-manifest:  the manifest declares 500 MB and streams zeros.
 * - huge-config:    the config blob streams 20 MiB without a Content-Length.
 * - redirect-loop:  the manifest redirects to itself forever.
 * - never-answers:  the manifest request is accepted and never answered.
 */
import { createHash } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { buildLayer } from "./layers.js"

export const faults = [
  "ok",
  "stall-headers",
  "stall-mid",
  "stall-once",
  "slow",
  "cut",
  "long",
  "short",
  "too-many-requests",
  "unavailable",
  "stall-manifest-once",
  "huge-manifest",
  "huge-config",
  "redirect-loop",
  "never-answers"
] as const
export type Fault = (typeof faults)[number]

export interface BadRegistryOptions {
  /** Layer blob size (incompressible content). */
  readonly layerBytes?: number
  /** For "slow": pieces and the pause before each but the first. */
  readonly slowPieces?: number
  readonly pieceIntervalMs?: number
  /** Serve only these endpoints (building big layers for all would be slow). */
  readonly only?: ReadonlyArray<Fault>
}

export interface BadImage {
  readonly manifest: Buffer
  readonly manifestDigest: string
  readonly config: Buffer
  readonly configDigest: string
  readonly layer: Buffer
  readonly layerDigest: string
}

export interface BadRegistry {
  /** `127.0.0.1:<port>`. */
  readonly host: string
  readonly images: ReadonlyMap<Fault, BadImage>
  /** Requests per path, to see retries and resumes. */
  readonly requests: Array<{ readonly path: string; readonly range: string | undefined }>
  readonly stop: () => Promise<void>
}

const digest = (bytes: Buffer) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`

/** Seeded noise: each fault's layer differs, and is as big on the wire as on disk. */
const noise = (bytes: number, seed: number) => {
  const out = Buffer.alloc(bytes)
  let x = seed | 1
  for (let i = 0; i + 4 <= bytes; i += 4) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out.writeInt32LE(x | 0, i)
  }
  return out
}

const makeImage = async (fault: Fault, index: number, layerBytes: number): Promise<BadImage> => {
  const layer = await buildLayer(
    [
      { type: "directory", name: "data" },
      { type: "file", name: `data/${fault}`, content: noise(layerBytes, 0x9e3779b9 * (index + 1)) }
    ],
    "gzip"
  )
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["/bin/sh"] },
      rootfs: { type: "layers", diff_ids: [layer.diffId] }
    })
  )
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: digest(config), size: config.length },
      layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.blob.length }]
    })
  )
  return {
    manifest,
    manifestDigest: digest(manifest),
    config,
    configDigest: digest(config),
    layer: layer.blob,
    layerDigest: layer.digest
  }
}

const route = /^\/v2\/([a-z-]+)\/(manifests|blobs)\/([^/]+)$/

export const startBadRegistry = async (options: BadRegistryOptions = {}): Promise<BadRegistry> => {
  const layerBytes = options.layerBytes ?? 256 << 10
  const images = new Map<Fault, BadImage>()
  for (const [index, fault] of faults.entries()) {
    if (options.only === undefined || options.only.includes(fault)) {
      images.set(fault, await makeImage(fault, index, layerBytes))
    }
  }
  const requests: Array<{ path: string; range: string | undefined }> = []
  const seen = new Map<string, number>()
  const stalled = new Set<http.ServerResponse>()
  const timers = new Set<NodeJS.Timeout>()
  const later = (ms: number, run: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer)
      run()
    }, ms)
    timers.add(timer)
  }
  const stall = (response: http.ServerResponse) => {
    stalled.add(response)
    response.on("close", () => stalled.delete(response))
  }

  /** The blob as asked for (honouring `Range: bytes=N-`): status, headers and the bytes to send. */
  const ranged = (request: http.IncomingMessage, bytes: Buffer) => {
    const match = /^bytes=(\d+)-$/.exec(request.headers.range ?? "")
    const start = match ? Number(match[1]) : 0
    const body = bytes.subarray(start)
    const headers: Record<string, string> = {
      "content-type": "application/octet-stream",
      "content-length": String(body.length)
    }
    if (match) headers["content-range"] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`
    return { status: match ? 206 : 200, headers, body, start }
  }

  const serveLayer = (fault: Fault, count: number, request: http.IncomingMessage, response: http.ServerResponse) => {
    const image = images.get(fault)!
    const { status, headers, body, start } = ranged(request, image.layer)
    const half = Math.floor(image.layer.length / 2)
    switch (fault) {
      case "stall-headers":
        response.writeHead(status, headers)
        response.flushHeaders()
        return stall(response)
      case "stall-mid":
        response.writeHead(status, headers)
        response.write(body.subarray(0, Math.max(1, Math.floor(body.length / 4))))
        return stall(response)
      case "stall-once":
        response.writeHead(status, headers)
        if (count > 1) return void response.end(body)
        response.write(body.subarray(0, half))
        return stall(response)
      case "slow": {
        const pieces = options.slowPieces ?? 8
        const size = Math.ceil(body.length / pieces)
        response.writeHead(status, headers)
        const send = (piece: number) => {
          const chunk = body.subarray(piece * size, (piece + 1) * size)
          if (piece === pieces - 1 || (piece + 1) * size >= body.length) return void response.end(chunk)
          response.write(chunk)
          later(options.pieceIntervalMs ?? 100, () => send(piece + 1))
        }
        return send(0)
      }
      case "cut":
        response.writeHead(status, headers)
        response.write(body.subarray(0, Math.max(0, half - start)), () => response.destroy())
        return
      case "long": {
        const longer = Buffer.concat([image.layer, Buffer.alloc(4096, 7)])
        response.writeHead(200, { "content-length": String(longer.length) })
        return void response.end(longer)
      }
      case "short":
        response.writeHead(200, { "content-length": String(half) })
        return void response.end(image.layer.subarray(0, half))
      case "unavailable":
        if (count <= 2) {
          response.writeHead(503, { "content-type": "application/json" })
          return void response.end(JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: "try later" }] }))
        }
        response.writeHead(status, headers)
        return void response.end(body)
      default:
        response.writeHead(status, headers)
        return void response.end(body)
    }
  }

  const serveManifest = (fault: Fault, count: number, response: http.ServerResponse, url: string) => {
    const image = images.get(fault)!
    switch (fault) {
      case "too-many-requests":
        if (count > 1) break
        response.writeHead(429, { "retry-after": "1" })
        return void response.end()
      case "stall-manifest-once":
        if (count > 1) break
        response.writeHead(200, {
          "content-type": "application/vnd.oci.image.manifest.v1+json",
          "content-length": String(image.manifest.length)
        })
        response.flushHeaders()
        return stall(response)
      case "huge-manifest": {
        response.writeHead(200, {
          "content-type": "application/vnd.oci.image.manifest.v1+json",
          "content-length": String(500_000_000)
        })
        return void response.write(Buffer.alloc(64 << 10))
      }
      case "redirect-loop":
        response.writeHead(302, { location: url })
        return void response.end()
      case "never-answers":
        return stall(response)
    }
    response.writeHead(200, {
      "content-type": "application/vnd.oci.image.manifest.v1+json",
      "content-length": String(image.manifest.length),
      "docker-content-digest": image.manifestDigest
    })
    response.end(image.manifest)
  }

  const server = http.createServer((request, response) => {
    const url = request.url ?? "/"
    requests.push({ path: url, range: request.headers.range })
    if (url === "/v2/" || url === "/v2") return void response.writeHead(200).end("{}")
    const match = route.exec(url)
    const fault = match?.[1] as Fault | undefined
    const image = fault === undefined ? undefined : images.get(fault)
    if (!match || fault === undefined || image === undefined) return void response.writeHead(404).end()
    const key = `${match[2]}/${match[3]}`
    const count = (seen.get(`${fault}/${key}`) ?? 0) + 1
    seen.set(`${fault}/${key}`, count)
    if (match[2] === "manifests") return serveManifest(fault, count, response, url)
    if (match[3] === image.configDigest) {
      if (fault !== "huge-config") {
        response.writeHead(200, { "content-length": String(image.config.length) })
        return void response.end(image.config)
      }
      // No Content-Length: only counting the bytes can stop it.
      response.writeHead(200, { "content-type": "application/octet-stream" })
      let sent = 0
      const pump = () => {
        while (sent < 20 << 20) {
          sent += 64 << 10
          if (!response.write(Buffer.alloc(64 << 10))) return void response.once("drain", pump)
        }
        response.end()
      }
      response.on("error", () => undefined)
      return pump()
    }
    if (match[3] === image.layerDigest) return serveLayer(fault, count, request, response)
    response.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port
  return {
    host: `127.0.0.1:${port}`,
    images,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer)
        for (const response of stalled) response.destroy()
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}
