/**
 * A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1, with
 * optional htpasswd or token auth, plus helpers to push images the way `docker push` would.
 *
 *   const registry = await startRegistry()                  // or { auth: "basic" } / { auth: "token" }
 *   const layer = await buildLayer([{ name: "etc/hostname", type: "file", content: "x\n" }])
 *   const image = await pushImage(registry, "test/app", "v1", { layers: [layer] })
 *   const ref = imageRef(registry, "test/app", { tag: "v1" })  // an ImageReference for banger
 *   ...
 *   await registry.stop()                                    // kills exactly that pid, removes its dir
 *
 * In Effect tests, `registryScoped(options)` does the same as an acquireRelease.
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { X509Certificate } from "node:crypto"
import { createReadStream } from "node:fs"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Readable } from "node:stream"
import { Effect } from "effect"
import type { ImageReference, Platform } from "../../src/domain/reference.js"
import { sha256 } from "./layers.js"
import { startTokenServer, type TokenServer } from "./token-server.js"

export type RegistryAuth = "none" | "basic" | "token"

export interface RegistryOptions {
  /** Default "none". */
  readonly auth?: RegistryAuth
  /** The account the registry accepts (basic and token auth). Default `banger` / `s3cret`. */
  readonly username?: string
  readonly password?: string
  /** Token auth: OAuth2 refresh tokens (docker's `identitytoken`) the token server accepts for `username`. */
  readonly refreshTokens?: ReadonlyArray<string>
}

export interface Credentials {
  readonly username: string
  readonly password: string
}

export interface TestRegistry {
  /** `127.0.0.1:<port>`: the registry part of image references. */
  readonly host: string
  /** `http://127.0.0.1:<port>`. */
  readonly url: string
  readonly auth: RegistryAuth
  /** The account configured with `auth` (undefined for "none"). */
  readonly credentials: Credentials | undefined
  /** Token auth only: the token server, with a log of the token requests it served. */
  readonly tokenServer: TokenServer | undefined
  readonly pid: number
  /** Temp dir with config, storage and auth files; removed by `stop`. */
  readonly dir: string
  readonly stop: () => Promise<void>
}

const REGISTRY_BIN = "/usr/bin/docker-registry"
const TOKEN_SERVICE = "banger-test-registry"
const TOKEN_ISSUER = "banger-test-issuer"

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const run = (command: string, args: ReadonlyArray<string>, cwd?: string): string => {
  const result = spawnSync(command, args, { cwd, encoding: "utf8" })
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${result.stderr || result.error}`)
  return result.stdout
}

/** Strings as YAML double-quoted scalars (JSON string syntax is valid YAML). */
const q = (value: string) => JSON.stringify(value)

const configYaml = (dir: string, port: number, auth: string) => `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${q(path.join(dir, "data"))}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: ${q(`127.0.0.1:${port}`)}
  secret: ${q("banger-test-secret")}
${auth}`

const waitForExit = (child: ChildProcess, ms: number) =>
  new Promise<boolean>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(true)
    const timer = setTimeout(() => resolve(false), ms)
    child.once("exit", () => {
      clearTimeout(timer)
      resolve(true)
    })
  })

/** Until `/v2/` answers (200, or 401 when auth is on); fails early if the process dies. */
const waitReady = async (url: string, child: ChildProcess, stderr: () => string) => {
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}: ${stderr()}`)
    try {
      const response = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) })
      await response.arrayBuffer()
      if (response.status === 200 || response.status === 401) return
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`docker-registry did not answer on ${url} within 20 s: ${stderr()}`)
}

export const startRegistry = async (options: RegistryOptions = {}): Promise<TestRegistry> => {
  const auth = options.auth ?? "none"
  const credentials =
    auth === "none" ? undefined : { username: options.username ?? "banger", password: options.password ?? "s3cret" }
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "banger-registry-"))
  let tokenServer: TokenServer | undefined
  try {
    let authYaml = ""
    if (auth === "basic" && credentials) {
      const htpasswd = path.join(dir, "htpasswd")
      await fs.writeFile(htpasswd, run("htpasswd", ["-Bbn", credentials.username, credentials.password]))
      authYaml = `auth:\n  htpasswd:\n    realm: ${q("banger-test")}\n    path: ${q(htpasswd)}\n`
    } else if (auth === "token" && credentials) {
      const keyPath = path.join(dir, "token.key")
      const certPath = path.join(dir, "token.crt")
      run("openssl", [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        keyPath,
        "-out",
        certPath,
        "-days",
        "2",
        "-subj",
        "/CN=banger-test-token"
      ])
      const certPem = await fs.readFile(certPath, "utf8")
      tokenServer = await startTokenServer({
        service: TOKEN_SERVICE,
        issuer: TOKEN_ISSUER,
        keyPem: await fs.readFile(keyPath, "utf8"),
        certDer: Buffer.from(new X509Certificate(certPem).raw),
        users: { [credentials.username]: credentials.password },
        refreshTokens: Object.fromEntries((options.refreshTokens ?? []).map((token) => [token, credentials.username]))
      })
      authYaml = [
        "auth:",
        "  token:",
        `    realm: ${q(tokenServer.realm)}`,
        `    service: ${q(TOKEN_SERVICE)}`,
        `    issuer: ${q(TOKEN_ISSUER)}`,
        `    rootcertbundle: ${q(certPath)}`,
        ""
      ].join("\n")
    }

    // The free port can be taken between probe and bind: try a few.
    for (let attempt = 0; ; attempt++) {
      const port = await freePort()
      const configPath = path.join(dir, "config.yml")
      await fs.writeFile(configPath, configYaml(dir, port, authYaml))
      const child = spawn(REGISTRY_BIN, ["serve", configPath], { stdio: ["ignore", "ignore", "pipe"] })
      let stderr = ""
      child.stderr!.on("data", (chunk: Buffer) => {
        stderr = (stderr + chunk.toString("utf8")).slice(-4000)
      })
      const url = `http://127.0.0.1:${port}`
      try {
        await waitReady(url, child, () => stderr)
      } catch (error) {
        child.kill("SIGKILL")
        await waitForExit(child, 5000)
        if (attempt < 2 && /address already in use/.test(stderr)) continue
        throw error
      }
      const server = tokenServer
      let stopped = false
      return {
        host: `127.0.0.1:${port}`,
        url,
        auth,
        credentials,
        tokenServer: server,
        pid: child.pid!,
        dir,
        stop: async () => {
          if (stopped) return
          stopped = true
          child.kill("SIGTERM")
          if (!(await waitForExit(child, 5000))) {
            child.kill("SIGKILL")
            await waitForExit(child, 5000)
          }
          await server?.stop()
          await fs.rm(dir, { recursive: true, force: true })
        }
      }
    }
  } catch (error) {
    await tokenServer?.stop()
    await fs.rm(dir, { recursive: true, force: true })
    throw error
  }
}

/** `startRegistry` as a scoped resource: stopped (and its dir removed) when the scope closes. */
export const registryScoped = (options?: RegistryOptions) =>
  Effect.acquireRelease(
    Effect.promise(() => startRegistry(options)),
    (registry) => Effect.promise(() => registry.stop())
  )

/** An ImageReference as banger's reference parser would produce it for a registry on this host. */
export const imageRef = (
  registry: { readonly host: string } | string,
  repository: string,
  pin: { readonly tag?: string | undefined; readonly digest?: string | undefined } = { tag: "latest" }
): ImageReference => {
  const host = typeof registry === "string" ? registry : registry.host
  const tag = pin.tag ?? (pin.digest === undefined ? "latest" : undefined)
  return {
    registry: host,
    repository,
    tag,
    digest: pin.digest,
    normalized: `${host}/${repository}${tag !== undefined ? `:${tag}` : ""}${pin.digest !== undefined ? `@${pin.digest}` : ""}`
  }
}

/**
 * Writes a docker `config.json` with the given `auths` entries into a fresh temp dir (point
 * `DOCKER_CONFIG` or the client's `dockerConfigPath` at it). `cleanup` removes the dir.
 */
export const writeDockerConfig = async (auths: Readonly<Record<string, Readonly<Record<string, string>>>>) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "banger-docker-config-"))
  const configPath = path.join(dir, "config.json")
  await fs.writeFile(configPath, JSON.stringify({ auths }, null, 2))
  return { dir, path: configPath, cleanup: () => fs.rm(dir, { recursive: true, force: true }) }
}

/** The `auths` entry `docker login` writes for a user. */
export const basicAuthEntry = (credentials: Credentials) => ({
  auth: Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64")
})

// ---------------------------------------------------------------------------------------------
// Pushing

/** A layer to push: in memory (`BuiltLayer` from layers.ts) or a file (`LayerFile` from rootfs-layers.ts). */
export type PushableLayer = {
  readonly digest: string
  readonly diffId: string
  readonly mediaType: string
} & ({ readonly blob: Uint8Array } | { readonly path: string; readonly size: number })

export interface PushImageOptions {
  readonly layers: ReadonlyArray<PushableLayer>
  /** Default linux/amd64. */
  readonly platform?: Platform
  /** Shallow-merged over the generated config (os, architecture, variant, rootfs.diff_ids, ...). */
  readonly config?: Readonly<Record<string, unknown>>
  /** Default "oci". "docker" also maps OCI tar+gzip layers to the Docker rootfs.diff.tar.gzip type. */
  readonly manifestMediaType?: "oci" | "docker"
  /** Overrides the registry's own account for these requests. */
  readonly auth?: Credentials
}

export interface PushedManifest {
  readonly digest: string
  readonly bytes: Buffer
  readonly size: number
  readonly mediaType: string
}

export interface PushedImage extends PushedManifest {
  readonly config: { readonly digest: string; readonly size: number; readonly bytes: Buffer }
  readonly platform: Platform
}

export interface IndexEntry {
  readonly platform: Platform
  readonly manifestDigest: string
  readonly size: number
  /** Default: the OCI or Docker manifest type matching the index type. */
  readonly mediaType?: string
}

const OCI = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layerGzip: "application/vnd.oci.image.layer.v1.tar+gzip"
}
const DOCKER = {
  index: "application/vnd.docker.distribution.manifest.list.v2+json",
  manifest: "application/vnd.docker.distribution.manifest.v2+json",
  config: "application/vnd.docker.container.image.v1+json",
  layerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip"
}

type Target = Pick<TestRegistry, "url" | "auth" | "credentials" | "tokenServer">

const tokenCache = new WeakMap<object, Map<string, string>>()

/** Authorization for pushing to `repository`, from the registry's own account (or `override`). */
const authorization = async (registry: Target, repository: string, override?: Credentials) => {
  const credentials = override ?? registry.credentials
  if (registry.auth === "none" || credentials === undefined) return undefined
  const basic = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64")}`
  if (registry.auth === "basic") return basic
  const cache = tokenCache.get(registry) ?? new Map<string, string>()
  tokenCache.set(registry, cache)
  const key = `${credentials.username} ${repository}`
  const hit = cache.get(key)
  if (hit) return hit
  const url = new URL(registry.tokenServer!.realm)
  url.searchParams.set("service", TOKEN_SERVICE)
  url.searchParams.set("scope", `repository:${repository}:pull,push`)
  const response = await fetch(url, { headers: { authorization: basic } })
  if (response.status !== 200) throw new Error(`token server refused the push token: ${response.status}`)
  const header = `Bearer ${((await response.json()) as { token: string }).token}`
  cache.set(key, header)
  return header
}

const request = async (
  registry: Target,
  repository: string,
  pathOrUrl: string,
  init: RequestInit & { readonly duplex?: "half" },
  override?: Credentials
) => {
  const auth = await authorization(registry, repository, override)
  const headers = new Headers(init.headers)
  if (auth) headers.set("authorization", auth)
  const response = await fetch(new URL(pathOrUrl, registry.url), { ...init, headers })
  return response
}

const expectStatus = async (response: Response, expected: number, what: string) => {
  if (response.status !== expected) {
    throw new Error(`${what}: HTTP ${response.status} ${await response.text()}`)
  }
}

/** Uploads one blob (POST + monolithic PUT ?digest=), skipping it when the registry already has it. */
export const pushBlob = async (
  registry: Target,
  repository: string,
  blob: { readonly digest: string } & (
    | { readonly blob: Uint8Array }
    | { readonly path: string; readonly size: number }
  ),
  auth?: Credentials
): Promise<void> => {
  const head = await request(registry, repository, `/v2/${repository}/blobs/${blob.digest}`, { method: "HEAD" }, auth)
  if (head.status === 200) return
  const start = await request(registry, repository, `/v2/${repository}/blobs/uploads/`, { method: "POST" }, auth)
  await expectStatus(start, 202, `starting upload of ${blob.digest}`)
  const location = new URL(start.headers.get("location")!, registry.url)
  location.searchParams.set("digest", blob.digest)
  const body: RequestInit & { readonly duplex?: "half" } =
    "blob" in blob
      ? { body: blob.blob as RequestInit["body"], headers: { "content-type": "application/octet-stream" } }
      : {
          body: Readable.toWeb(createReadStream(blob.path)) as RequestInit["body"],
          duplex: "half" as const,
          headers: { "content-type": "application/octet-stream", "content-length": String(blob.size) }
        }
  const put = await request(registry, repository, location.toString(), { method: "PUT", ...body }, auth)
  await expectStatus(put, 201, `uploading blob ${blob.digest}`)
}

/** PUTs manifest bytes under `reference` (a tag, or the digest itself) and returns the digest. */
export const pushManifest = async (
  registry: Target,
  repository: string,
  reference: string | undefined,
  bytes: Buffer,
  mediaType: string,
  auth?: Credentials
): Promise<PushedManifest> => {
  const digest = sha256(bytes)
  const response = await request(
    registry,
    repository,
    `/v2/${repository}/manifests/${reference ?? digest}`,
    { method: "PUT", body: bytes, headers: { "content-type": mediaType } },
    auth
  )
  await expectStatus(response, 201, `pushing manifest ${reference ?? digest}`)
  return { digest, bytes, size: bytes.length, mediaType }
}

/**
 * Pushes layers, a config and a manifest; tags it `tag` (or pushes by digest only when undefined).
 * The config carries `rootfs.diff_ids` from the layers plus the platform.
 */
export const pushImage = async (
  registry: Target,
  repository: string,
  tag: string | undefined,
  options: PushImageOptions
): Promise<PushedImage> => {
  const platform = options.platform ?? { os: "linux", architecture: "amd64" }
  const docker = options.manifestMediaType === "docker"
  const types = docker ? DOCKER : OCI
  for (const layer of options.layers) await pushBlob(registry, repository, layer, options.auth)
  const configBytes = Buffer.from(
    JSON.stringify({
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      created: "2024-01-01T00:00:00Z",
      config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["/bin/sh"] },
      rootfs: { type: "layers", diff_ids: options.layers.map((layer) => layer.diffId) },
      ...options.config
    })
  )
  const config = { digest: sha256(configBytes), size: configBytes.length, bytes: configBytes }
  await pushBlob(registry, repository, { digest: config.digest, blob: configBytes }, options.auth)
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: types.manifest,
      config: { mediaType: types.config, digest: config.digest, size: config.size },
      layers: options.layers.map((layer) => ({
        mediaType: docker && layer.mediaType === OCI.layerGzip ? DOCKER.layerGzip : layer.mediaType,
        digest: layer.digest,
        size: "blob" in layer ? layer.blob.length : layer.size
      }))
    })
  )
  const pushed = await pushManifest(registry, repository, tag, manifest, types.manifest, options.auth)
  return { ...pushed, config, platform }
}

/** Pushes a multi-platform index (OCI, or a Docker manifest list) over already pushed manifests. */
export const pushIndex = async (
  registry: Target,
  repository: string,
  tag: string | undefined,
  entries: ReadonlyArray<IndexEntry>,
  mediaType: "oci" | "docker" = "oci",
  auth?: Credentials
): Promise<PushedManifest> => {
  const types = mediaType === "docker" ? DOCKER : OCI
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: types.index,
      manifests: entries.map((entry) => ({
        mediaType: entry.mediaType ?? types.manifest,
        digest: entry.manifestDigest,
        size: entry.size,
        platform: entry.platform
      }))
    })
  )
  return pushManifest(registry, repository, tag, bytes, types.index, auth)
}
