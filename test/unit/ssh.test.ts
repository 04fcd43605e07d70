/**
 * ssh's pure parts (the argv, known_hosts, key validation), the guest edits on an in-memory image,
 * and the readiness wait against real loopback sockets. Real ssh-keygen, debugfs and ext4 are in
 * test/integration/ssh-keys.test.ts; a real sshd in a VM in test/integration/vm-ssh.test.ts.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Either, Layer } from "effect"
import { afterAll, beforeAll } from "vitest"
import { hostKeyAlias, knownHostsContent, parsePublicKeys, SshTarget, VM_KNOWN_HOSTS } from "../../src/domain/ssh.js"
import { GuestFs, type GuestFsFake, makeGuestFsFake } from "../../src/layers/guest/guest-fs.js"
import { makeSshFake, Ssh } from "../../src/layers/ssh/ssh.js"
import { ATTACH_COMMAND, sshArgv, sshCommandLine } from "../../src/layers/ssh/ssh-argv.js"
import { fakeEd25519 } from "../../src/layers/ssh/ssh-fake.js"
import { StatePaths } from "../../src/layers/state/state-paths.js"
import { configureGuest } from "../../src/pipelines/vm/configure-guest.js"
import { prepareGuestSsh, SSHD_CONFIG, validateSshKeys } from "../../src/pipelines/vm/guest-ssh.js"
import { waitSsh } from "../../src/pipelines/vm/wait-ssh.js"

const target = new SshTarget({
  name: "dev",
  address: "10.200.0.2",
  port: 22,
  identityFile: "/var/lib/banger/ssh/id_ed25519",
  knownHostsFile: "/var/lib/banger/vms/abc/known_hosts",
  hostKeyAlias: "banger-abc",
  running: true
})

describe("sshArgv", () => {
  it("pins banger's key, the VM's known_hosts and its alias, strictly, and ends with the host then -- and the command", () => {
    expect(sshArgv(target, { command: ["cat", "/etc/hostname"] })).toEqual([
      "-F",
      "/dev/null",
      "-i",
      "/var/lib/banger/ssh/id_ed25519",
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "UserKnownHostsFile=/var/lib/banger/vms/abc/known_hosts",
      "-o",
      "GlobalKnownHostsFile=/dev/null",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      "HostKeyAlias=banger-abc",
      "-o",
      "HostKeyAlgorithms=ssh-ed25519",
      "-o",
      "UpdateHostKeys=no",
      "-o",
      "ConnectTimeout=10",
      "-p",
      "22",
      "-l",
      "root",
      "10.200.0.2",
      "--",
      "cat",
      "/etc/hostname"
    ])
  })
  it("takes another user, -t for attach, and no -- without a command", () => {
    const argv = sshArgv(target, { user: "dev", tty: true })
    expect(argv.slice(-4)).toEqual(["-l", "dev", "-t", "10.200.0.2"])
    expect(argv).not.toContain("--")
    expect(sshArgv(target, { tty: true, command: [ATTACH_COMMAND] }).slice(-3)).toEqual([
      "10.200.0.2",
      "--",
      ATTACH_COMMAND
    ])
  })
  it("never turns host key checking off", () => {
    const all = [sshArgv(target), sshArgv(target, { tty: true, user: "x", command: ["true"] })].flat()
    expect(all.filter((word) => /StrictHostKeyChecking/i.test(word))).toEqual([
      "StrictHostKeyChecking=yes",
      "StrictHostKeyChecking=yes"
    ])
  })
  it("prints a command line a shell reads back as the same argv", () => {
    const spaced = new SshTarget({ ...target, identityFile: "/tmp/my state/ssh/id_ed25519" })
    const line = sshCommandLine(spaced)
    expect(line).toContain("-i '/tmp/my state/ssh/id_ed25519'")
    expect(line.startsWith("ssh -F /dev/null -i ")).toBe(true)
    expect(line.endsWith(" -l root 10.200.0.2")).toBe(true)
  })
})

describe("public keys and known_hosts", () => {
  const ed = fakeEd25519(7, "me@laptop")
  it("accepts key lines, skipping blanks and comments, CRLF too", () => {
    expect(parsePublicKeys(`${ed}\n`)).toEqual(Either.right([ed]))
    expect(parsePublicKeys(`# mine\r\n\r\n${ed}\r\n${fakeEd25519(8, "")}\r\n`)).toEqual(
      Either.right([ed, fakeEd25519(8, "").trim()])
    )
  })
  it("refuses what is not a public key, saying why", () => {
    const reason = (text: string) =>
      Either.getLeft(parsePublicKeys(text)).pipe((left) => left._tag === "Some" && left.value)
    expect(reason("")).toBe("holds no key")
    expect(reason("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")).toBe("this is a private key: give its .pub")
    expect(reason("ssh-foo AAAA x")).toMatch(/^"ssh-foo" is not an ssh public key type/)
    expect(reason("ssh-ed25519 not*base64 x")).toBe("the key data is not base64")
    // An ed25519 blob presented as RSA.
    expect(reason(`ssh-rsa ${ed.split(" ")[1]} x`)).toBe("the key data is not a ssh-rsa key")
    expect(reason(`${ed}\nfrom="10.0.0.1" ${ed}`)).toMatch(/^line 2: "from="10.0.0.1"" is not/)
    expect(reason("x".repeat(70_000))).toBe("larger than 64 KiB")
  })
  it("validateSshKeys fails with InvalidSshKey naming the file", () =>
    Effect.runPromise(
      Effect.gen(function* () {
        expect(yield* validateSshKeys([{ path: "/a.pub", content: ed }])).toEqual([ed])
        const error = yield* Effect.flip(
          validateSshKeys([
            { path: "/a.pub", content: ed },
            { path: "/home/me/.ssh/id_ed25519", content: "-----BEGIN OPENSSH PRIVATE KEY-----\n" }
          ])
        )
        expect(error._tag).toBe("InvalidSshKey")
        expect(error.message).toBe(
          "invalid ssh public key /home/me/.ssh/id_ed25519: this is a private key: give its .pub"
        )
      })
    ))
  it("files the host key under the VM's alias only (no address: addresses are reused)", () => {
    expect(knownHostsContent(hostKeyAlias("0123abcd"), `${ed}\n`)).toBe(
      `banger-0123abcd ssh-ed25519 ${ed.split(" ")[1]}\n`
    )
  })
})

describe("ssh in configureGuest (in-memory image)", () => {
  let work: string
  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-ssh-unit-"))
    fs.writeFileSync(path.join(work, "busybox"), "static busybox")
  })
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }))

  const setup = (fake: GuestFsFake, userKeys: ReadonlyArray<string> = []) => {
    const ssh = makeSshFake()
    const dir = fs.mkdtempSync(path.join(work, "vm-"))
    return Effect.gen(function* () {
      const prepared = yield* prepareGuestSsh({ dir, id: "0123abcd", name: "dev", userKeys })
      yield* configureGuest({
        disk: "disk.ext4",
        name: "dev",
        config: {},
        busybox: path.join(work, "busybox"),
        ssh: prepared
      })
      return { dir, ssh }
    }).pipe(
      Effect.provide(
        Layer.mergeAll(GuestFs.layerTest(fake), Ssh.layerTest(ssh), NodeContext.layer, StatePaths.layer(work))
      ),
      Effect.runPromise
    )
  }
  const node = (fake: GuestFsFake, p: string) => fake.nodes.get(p)
  const text = (fake: GuestFsFake, p: string) => new TextDecoder().decode(node(fake, p)?.content)

  it("writes the host key, the drop-in and root's authorized_keys with root's modes, in the one batch", async () => {
    const fake = makeGuestFsFake(
      { "/etc/passwd": "root:x:0:0:root:/root:/bin/bash\n", "/etc/ssh/sshd_config": "Include x\n" },
      {}
    )
    fake.nodes.set("/root", { kind: "directory", mode: 0o700, uid: 0, gid: 0 })
    const user = fakeEd25519(9, "me@laptop")
    const { dir } = await setup(fake, [user])
    expect(fake.applied).toHaveLength(1)
    const key = node(fake, "/etc/ssh/ssh_host_ed25519_key")
    expect([key?.mode, key?.uid, key?.gid, text(fake, "/etc/ssh/ssh_host_ed25519_key")]).toEqual([
      0o600,
      0,
      0,
      "fake private host key 2\n"
    ])
    expect(node(fake, "/etc/ssh/ssh_host_ed25519_key.pub")?.mode).toBe(0o644)
    expect(text(fake, "/etc/ssh/ssh_host_ed25519_key.pub")).toBe(`${fakeEd25519(2, "root@dev")}\n`)
    expect(text(fake, "/etc/ssh/sshd_config.d/00-banger.conf")).toBe(SSHD_CONFIG)
    expect(SSHD_CONFIG).toContain("HostKey /etc/ssh/ssh_host_ed25519_key\n")
    expect(node(fake, "/root/.ssh")).toMatchObject({ kind: "directory", mode: 0o700, uid: 0, gid: 0 })
    expect(node(fake, "/root/.ssh/authorized_keys")).toMatchObject({ mode: 0o600, uid: 0, gid: 0 })
    expect(text(fake, "/root/.ssh/authorized_keys")).toBe(`${fakeEd25519(1, "banger")}\n${user}\n`)
    // The host side: the same public key in the VM's known_hosts, under its alias.
    expect(fs.readFileSync(path.join(dir, VM_KNOWN_HOSTS), "utf8")).toBe(
      knownHostsContent("banger-0123abcd", fakeEd25519(2, "root@dev"))
    )
  })

  it("finds root's home in the image's /etc/passwd, and replaces keys the image shipped", async () => {
    const fake = makeGuestFsFake({
      "/etc/passwd": "toor:x:0:0:root:/var/root:/bin/sh\nroot:x:1000:1000::/home/root:/bin/sh\n",
      "/var/root/.ssh/authorized_keys": "ssh-ed25519 AAAA image-author@build\n"
    })
    await setup(fake)
    expect(text(fake, "/var/root/.ssh/authorized_keys")).toBe(`${fakeEd25519(1, "banger")}\n`)
    expect(fake.nodes.has("/home/root/.ssh/authorized_keys")).toBe(false)
    expect(fake.nodes.has("/root/.ssh/authorized_keys")).toBe(false)
  })

  it("without /etc/passwd, root's home is /root, made 0700", async () => {
    const fake = makeGuestFsFake({ "/bin/app": "x" })
    await setup(fake)
    expect(node(fake, "/root")).toMatchObject({ kind: "directory", mode: 0o700, uid: 0, gid: 0 })
    expect(node(fake, "/root/.ssh/authorized_keys")?.mode).toBe(0o600)
  })
})

/** A loopback server that sends `greeting` to each connection (or nothing), closed afterwards. */
const server = (greeting: string | undefined) =>
  Effect.acquireRelease(
    Effect.async<net.Server & { port: number }>((resume) => {
      const srv = net.createServer((socket) => {
        if (greeting !== undefined) socket.write(greeting)
        socket.on("error", () => {})
      })
      srv.listen(0, "127.0.0.1", () =>
        resume(Effect.succeed(Object.assign(srv, { port: (srv.address() as net.AddressInfo).port })))
      )
    }),
    (srv) =>
      Effect.async<void>((resume) => {
        srv.close(() => resume(Effect.void))
      })
  )

/** A port nothing listens on: one we just had and closed. */
const closedPort = Effect.scoped(Effect.map(server(undefined), (srv) => srv.port))

describe("waitSsh (real loopback sockets)", () => {
  const live = Layer.merge(Layer.provide(Ssh.layer, StatePaths.layer(os.tmpdir())), NodeContext.layer)
  let consoleLog: string
  beforeAll(() => {
    consoleLog = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "banger-wait-ssh-")), "console.log")
    // Only the end of a long log is read, and only its last lines are quoted.
    fs.writeFileSync(
      consoleLog,
      `${"[    1.0] boot noise\n".repeat(2_000)}banger: sshd did not start\nbanger: dev ready\n`
    )
  })
  afterAll(() => fs.rmSync(path.dirname(consoleLog), { recursive: true, force: true }))
  const wait = (port: number, options: { timeout?: Duration.DurationInput; alive?: Effect.Effect<boolean> } = {}) =>
    waitSsh({
      name: "dev",
      address: "127.0.0.1",
      port,
      timeout: options.timeout ?? "10 seconds",
      alive: options.alive ?? Effect.succeed(true),
      consoleLog
    })

  it.live("returns once a port that refused starts answering with an SSH-2.0 banner", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const port = yield* closedPort
        const later = net.createServer((socket) => socket.end("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"))
        setTimeout(() => later.listen(port, "127.0.0.1"), 600)
        const started = Date.now()
        yield* wait(port).pipe(Effect.ensuring(Effect.sync(() => later.close())))
        expect(Date.now() - started).toBeGreaterThanOrEqual(500)
      })
    ).pipe(Effect.provide(live))
  )

  it.live("a port that answers something else is not sshd: a typed error naming the address and what it said", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const srv = yield* server("HTTP/1.1 400 Bad Request\r\n")
        const error = yield* Effect.flip(wait(srv.port, { timeout: "1500 millis" }))
        expect(error._tag).toBe("SshUnavailable")
        expect(error.message).toMatch(
          new RegExp(
            `^cannot ssh into VM "dev": sshd did not answer on 127.0.0.1:${srv.port} with an SSH-2.0 banner within 1s 500ms \\(it said: "HTTP/1.1 400 Bad Request"\\); console: .*\\[    1.0\\] boot noise \\| banger: sshd did not start \\| banger: dev ready$`
          )
        )
      })
    ).pipe(Effect.provide(live))
  )

  it.live("a VMM that exits while waiting fails at once", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      const started = Date.now()
      const error = yield* Effect.flip(wait(port, { alive: Effect.succeed(false) }))
      expect(error.message).toContain(
        `the VMM exited before sshd answered on 127.0.0.1:${port}; console: [    1.0] boot noise | `
      )
      expect(error.message.endsWith("banger: sshd did not start | banger: dev ready")).toBe(true)
      expect(Date.now() - started).toBeLessThan(5_000)
    }).pipe(Effect.provide(live))
  )
})
