import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as path from "node:path"
import { promisify } from "node:util"
import { Context, Effect, Layer } from "effect"
import { describeSystemError, SshKeygenError } from "../../domain/errors.js"
import { StatePaths } from "../state/state-paths.js"
import { makeSshFake, type SshFake } from "./ssh-fake.js"

export interface ClientKey {
  /** banger's private key: what ssh's `-i` gets. */
  readonly privateKeyPath: string
  /** Its public half, one `ssh-ed25519 … banger` line. */
  readonly publicKey: string
}

export interface HostKey {
  readonly privateKey: Uint8Array
  readonly publicKey: string
}

export interface SshShape {
  /** banger's client key pair under `<state>/ssh/`, made on first use (once, even when raced). */
  readonly clientKey: Effect.Effect<ClientKey, SshKeygenError>
  /** A fresh ed25519 host key for a VM, kept in its directory as `ssh_host_ed25519_key{,.pub}`. */
  readonly newHostKey: (dir: string, comment: string) => Effect.Effect<HostKey, SshKeygenError>
  /**
   * The first line a TCP server at host:port sends (an sshd's `SSH-2.0-…`), or undefined when
   * nothing accepts, nothing is said within `timeoutMs`, or the connection drops first.
   */
  readonly banner: (host: string, port: number, timeoutMs: number) => Effect.Effect<string | undefined>
}

const run = promisify(execFile)

const keygen = (file: string, comment: string) =>
  Effect.tryPromise({
    try: () =>
      run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file], {
        env: { ...process.env, LC_ALL: "C" }
      }),
    catch: (error) => {
      const stderr = (error as { stderr?: string }).stderr?.trim()
      const missing = (error as NodeJS.ErrnoException).code === "ENOENT"
      return new SshKeygenError({
        path: file,
        reason: missing
          ? "ssh-keygen is not installed (apt-get install openssh-client)"
          : stderr || describeSystemError(error)
      })
    }
  })

const attempt = <A>(file: string, action: () => Promise<A>) =>
  Effect.tryPromise({
    try: action,
    catch: (error) => new SshKeygenError({ path: file, reason: describeSystemError(error) })
  })

const readPublic = (file: string) =>
  attempt(file, () => fs.readFile(file, "utf8")).pipe(Effect.map((text) => text.trim()))

const make = Effect.gen(function* () {
  const paths = yield* StatePaths
  const keyPath = paths.sshClientKey
  const exists = (file: string) =>
    Effect.promise(() =>
      fs.access(file).then(
        () => true,
        () => false
      )
    )

  /**
   * Made in a private temp dir, then that dir is renamed to `<state>/ssh`: both halves appear at
   * once, and of two first uses racing (two creates, two daemons) the second rename fails on the
   * first one's non-empty dir, so everyone ends up with the same pair. A crash leaves only a temp
   * dir, which the start-up sweep of `<state>/tmp` removes.
   */
  const generate = Effect.gen(function* () {
    const staging = paths.tempPath(paths.tmp, "ssh-key")
    yield* attempt(staging, () =>
      fs.mkdir(paths.tmp, { recursive: true }).then(() => fs.mkdir(staging, { mode: 0o700 }))
    )
    yield* Effect.ensuring(
      Effect.gen(function* () {
        yield* keygen(path.join(staging, path.basename(keyPath)), "banger")
        yield* attempt(paths.sshDir, () =>
          fs.rename(staging, paths.sshDir).catch((error: NodeJS.ErrnoException) => {
            if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error
          })
        )
      }),
      Effect.promise(() => fs.rm(staging, { recursive: true, force: true }))
    )
  })

  const clientKey: SshShape["clientKey"] = Effect.gen(function* () {
    if (!(yield* exists(keyPath))) yield* generate
    if (!(yield* exists(keyPath))) {
      return yield* new SshKeygenError({ path: keyPath, reason: `${paths.sshDir} exists without it: remove that dir` })
    }
    return { privateKeyPath: keyPath, publicKey: yield* readPublic(`${keyPath}.pub`) }
  }).pipe(Effect.withSpan("ssh.clientKey"))

  const newHostKey: SshShape["newHostKey"] = (dir, comment) =>
    Effect.gen(function* () {
      const file = path.join(dir, "ssh_host_ed25519_key")
      // ssh-keygen asks before overwriting; a retried create may meet its predecessor's key.
      yield* attempt(file, () => Promise.all([fs.rm(file, { force: true }), fs.rm(`${file}.pub`, { force: true })]))
      yield* keygen(file, comment)
      const privateKey = yield* attempt(file, () => fs.readFile(file))
      return { privateKey: new Uint8Array(privateKey), publicKey: yield* readPublic(`${file}.pub`) }
    }).pipe(Effect.withSpan("ssh.newHostKey"))

  return { clientKey, newHostKey, banner: readBanner } satisfies SshShape
})

/** An SSH server speaks first; a line is at most 255 bytes (RFC 4253 4.2), so 1 KiB without one is not ssh. */
const readBanner: SshShape["banner"] = (host, port, timeoutMs) =>
  Effect.async<string | undefined>((resume) => {
    const socket = net.connect({ host, port })
    let received = ""
    let settled = false
    const finish = (line: string | undefined) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resume(Effect.succeed(line))
    }
    const timer = setTimeout(() => finish(undefined), timeoutMs)
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("latin1")
      const end = received.indexOf("\n")
      if (end >= 0) finish(received.slice(0, end).replace(/\r$/, ""))
      else if (received.length > 1024) finish(undefined)
    })
    socket.on("error", () => finish(undefined))
    socket.on("close", () => finish(undefined))
    return Effect.sync(() => {
      settled = true
      clearTimeout(timer)
      socket.destroy()
    })
  })

export class Ssh extends Context.Tag("banger/Ssh")<Ssh, SshShape>() {
  /** ssh-keygen from openssh-client, keys under the state dir, TCP for banners. */
  static readonly layer = Layer.effect(Ssh, make)

  /** Keys without ssh-keygen and banners as told (see makeSshFake); read what was asked from the fake. */
  static readonly layerTest = (fake: SshFake = makeSshFake()) => Layer.succeed(Ssh, fake.ssh)
}

export { makeSshFake, type SshFake } from "./ssh-fake.js"
