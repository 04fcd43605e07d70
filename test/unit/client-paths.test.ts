/**
 * The pieces of "client paths are read with the client's rights": the peer header's encoding and
 * stamping, which clients are served how, the addon's peer credentials on a real socket (a client
 * run as nobody with chosen groups), reads as the peer by real setpriv children, the tar intake
 * against hostile streams, and the per-request intake over a fake ClientFiles.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { pipeline } from "node:stream/promises"
import { Headers } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import * as tar from "tar-stream"
import { afterAll, beforeAll } from "vitest"
import { clientPaths } from "../../src/daemon/client-paths.js"
import { loadPeerCredentials, peerOfSocket } from "../../src/daemon/peer-credentials.js"
import { stampPeer } from "../../src/daemon/peer-protocol.js"
import { ClientPathRefused, FilesystemError } from "../../src/domain/errors.js"
import { decodePeer, encodePeer, PEER_HEADER, type Peer, pathAccess } from "../../src/domain/peer.js"
import { readFailure, setprivArgs } from "../../src/layers/client-files/as-peer.js"
import { ClientFiles, extractInto, makeClientFiles, userName } from "../../src/layers/client-files/client-files.js"
import { StatePaths } from "../../src/layers/state/state-paths.js"
import { FAKE_KERNEL_BYTES } from "../support/fake-kernel.js"

const NOBODY: Peer = { uid: 65534, gid: 65534, pid: 1, groups: [] }
let work: string

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-client-paths-unit-"))
  fs.chmodSync(work, 0o755)
})
afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

describe("the peer header", () => {
  it("round-trips, and anything malformed decodes to no peer", () => {
    const peer: Peer = { uid: 1001, gid: 1002, pid: 4242, groups: [27, 100] }
    expect(encodePeer(peer)).toBe("1001:1002:4242:27,100")
    expect(decodePeer(encodePeer(peer))).toEqual(peer)
    expect(decodePeer("0:0:1:")).toEqual({ uid: 0, gid: 0, pid: 1, groups: [] })
    for (const bad of [
      undefined,
      "",
      "0:0",
      "a:0:1:",
      "-1:0:1:",
      "0:0:1:,",
      "0:0:1:1,,2",
      "99999999999:0:1:",
      "0:0:1: "
    ])
      expect(decodePeer(bad)).toBeUndefined()
  })

  it("stampPeer drops what the client sent under the header's name, in any case, and adds the kernel's", () => {
    const stamped = stampPeer(
      [
        ["x-banger-peer", "0:0:1:"],
        ["traceparent", "t"],
        ["X-Banger-Peer", "0:0:1:"]
      ],
      "65534:65534:7:"
    )
    expect(stamped).toEqual([
      ["traceparent", "t"],
      [PEER_HEADER, "65534:65534:7:"]
    ])
  })
})

describe("who is served how (pathAccess)", () => {
  const alice: Peer = { uid: 1001, gid: 1001, pid: 9, groups: [] }
  it("the daemon's user and root as named; others as themselves under a root daemon, refused otherwise", () => {
    expect(pathAccess({ ...alice, uid: 0 }, 0)._tag).toBe("Direct")
    expect(pathAccess(alice, 1001)._tag).toBe("Direct")
    expect(pathAccess({ ...alice, uid: 0 }, 1001)._tag).toBe("Direct")
    expect(pathAccess(alice, 0)).toEqual({ _tag: "AsPeer", peer: alice })
    const refused = pathAccess(alice, 1002)
    expect(refused._tag).toBe("Refused")
    expect(pathAccess(undefined, 0)._tag).toBe("Refused")
  })

  it("setpriv gets the peer's ids and exactly its groups (none: cleared)", () => {
    expect(setprivArgs({ ...alice, groups: [27, 100] }, ["cat"])).toEqual([
      "--reuid=1001",
      "--regid=1001",
      "--groups=27,100",
      "--",
      "cat"
    ])
    expect(setprivArgs(alice, ["cat"])).toContain("--clear-groups")
  })

  it("a failed read says why: permission is a refusal, the rest are plain errors", () => {
    expect(readFailure(2, "sh: 2: cannot open /etc/shadow: Permission denied\n", "file")).toEqual({
      refused: true,
      reason: "not readable"
    })
    expect(readFailure(2, "sh: 2: cannot open /nope: No such file\n", "file")).toEqual({
      refused: false,
      reason: "file does not exist"
    })
    expect(readFailure(65, "", "file").reason).toBe("not a regular file")
    expect(readFailure(66, "", "directory").reason).toBe("not a directory")
    expect(readFailure(1, "\nsomething else\n", "file").reason).toBe("something else")
  })

  it("users are shown by name from passwd, else by uid", () => {
    const passwd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1001:1001::/home/alice:/bin/sh\n"
    expect(userName(1001, passwd)).toBe("alice")
    expect(userName(4242, passwd)).toBeUndefined()
  })
})

/** Accepts one connection on a fresh socket and answers its peer credentials, the client run by `connect`. */
const peerOfOneConnection = async (connect: (socket: string) => Promise<void>) => {
  const socket = path.join(work, `peer-${Math.random().toString(36).slice(2)}.sock`)
  const server = net.createServer()
  const accepted = new Promise<Peer>((resolve, reject) =>
    server.once("connection", (connection) => {
      try {
        resolve(peerOfSocket(connection))
      } catch (error) {
        reject(error)
      }
      connection.destroy()
    })
  )
  await new Promise<void>((resolve) => server.listen(socket, resolve))
  fs.chmodSync(socket, 0o666)
  try {
    await connect(socket)
    return await accepted
  } finally {
    server.close()
    fs.rmSync(socket, { force: true })
  }
}

describe("the peercred addon (SO_PEERCRED, SO_PEERGROUPS)", () => {
  it("reports this process for its own connection", async () => {
    expect(typeof loadPeerCredentials().peerCredentials).toBe("function")
    const peer = await peerOfOneConnection(
      (socket) =>
        new Promise((resolve, reject) => {
          const client = net.connect(socket, () => resolve())
          client.once("error", reject)
          client.once("close", () => undefined)
        })
    )
    expect(peer.uid).toBe(process.getuid!())
    expect(peer.gid).toBe(process.getgid!())
    expect(peer.pid).toBe(process.pid)
  })

  it("reports the kernel's ids and groups of a client run as nobody with two groups", async () => {
    let childPid = 0
    const peer = await peerOfOneConnection(
      (socket) =>
        new Promise((resolve, reject) => {
          const script = `require("node:net").connect(${JSON.stringify(socket)}).on("connect", () => setTimeout(() => process.exit(0), 200))`
          const child = spawn(
            "setpriv",
            ["--reuid=65534", "--regid=65534", "--groups=100,65534", process.execPath, "-e", script],
            { stdio: "ignore" }
          )
          childPid = child.pid!
          child.once("error", reject)
          child.once("exit", () => resolve())
        })
    )
    expect(peer).toEqual({ uid: 65534, gid: 65534, pid: childPid, groups: [100, 65534] })
  })

  it("throws (no peer) for a descriptor that is not a connected socket", () => {
    const fd = fs.openSync(path.join(work, "plain"), "w")
    try {
      expect(() => loadPeerCredentials().peerCredentials(fd)).toThrow(/SO_PEERCRED/)
    } finally {
      fs.closeSync(fd)
    }
  })
})

describe("reads as the peer (real setpriv children, as nobody)", () => {
  const files = makeClientFiles(0)
  const out = (name: string) => path.join(work, "out", name)
  beforeAll(() => {
    fs.mkdirSync(path.join(work, "out"))
    fs.mkdirSync(path.join(work, "open", "tree", "sub"), { recursive: true })
    fs.writeFileSync(path.join(work, "open", "kernel"), FAKE_KERNEL_BYTES, { mode: 0o644 })
    fs.writeFileSync(path.join(work, "open", "secret"), "root only", { mode: 0o600 })
    fs.writeFileSync(path.join(work, "open", "tree", "a.ko"), "a", { mode: 0o644 })
    fs.writeFileSync(path.join(work, "open", "tree", "sub", "b.ko"), "b", { mode: 0o4755 })
    fs.chmodSync(path.join(work, "open", "tree", "sub", "b.ko"), 0o4755)
    fs.symlinkSync("/etc/shadow", path.join(work, "open", "tree", "build"))
    for (const dir of ["open", "open/tree", "open/tree/sub"]) fs.chmodSync(path.join(work, dir), 0o755)
    fs.mkdirSync(path.join(work, "closed"), { mode: 0o700 })
    fs.writeFileSync(path.join(work, "closed", "kernel"), "behind a closed door", { mode: 0o644 })
  })

  it.effect("copies a file the peer can read, byte for byte", () =>
    Effect.gen(function* () {
      yield* files.copyFileAs(NOBODY, path.join(work, "open", "kernel"), out("kernel"))
      expect(fs.readFileSync(out("kernel"))).toEqual(FAKE_KERNEL_BYTES)
    })
  )

  it.effect("refuses a 0600 file, and a readable one behind a directory the peer cannot search", () =>
    Effect.gen(function* () {
      for (const [source, target] of [
        [path.join(work, "open", "secret"), out("secret")],
        [path.join(work, "closed", "kernel"), out("closed")]
      ] as const) {
        const error = yield* Effect.flip(files.copyFileAs(NOBODY, source, target))
        expect(error).toBeInstanceOf(ClientPathRefused)
        expect(error.message).toBe(`${source}: not readable by user nobody (uid 65534)`)
      }
    })
  )

  it.effect("a device, a directory or a missing file is an error, not a stream", () =>
    Effect.gen(function* () {
      const zero = yield* Effect.flip(files.copyFileAs(NOBODY, "/dev/zero", out("zero")))
      expect(zero).toEqual(new FilesystemError({ path: "/dev/zero", reason: "not a regular file" }))
      const dir = yield* Effect.flip(files.copyFileAs(NOBODY, path.join(work, "open"), out("dir")))
      expect(dir.message).toMatch(/not a regular file/)
      const missing = yield* Effect.flip(files.copyFileAs(NOBODY, path.join(work, "nope"), out("nope")))
      expect(missing.message).toMatch(/does not exist/)
    })
  )

  it.effect("copies a tree's directories and files, without symlinks or setuid bits", () =>
    Effect.gen(function* () {
      yield* files.copyTreeAs(NOBODY, path.join(work, "open", "tree"), out("tree"))
      expect(fs.readFileSync(out("tree/a.ko"), "utf8")).toBe("a")
      expect(fs.readFileSync(out("tree/sub/b.ko"), "utf8")).toBe("b")
      expect(fs.statSync(out("tree/sub/b.ko")).mode & 0o7777).toBe(0o755)
      expect(fs.existsSync(out("tree/build"))).toBe(false)
    })
  )

  it.effect("refuses a tree with one file or directory the peer cannot read", () =>
    Effect.gen(function* () {
      const hidden = path.join(work, "open", "tree", "hidden")
      fs.mkdirSync(hidden, { mode: 0o700 })
      const error = yield* Effect.flip(files.copyTreeAs(NOBODY, path.join(work, "open", "tree"), out("tree2")))
      fs.rmdirSync(hidden)
      expect(error).toBeInstanceOf(ClientPathRefused)
      const closed = yield* Effect.flip(files.copyTreeAs(NOBODY, path.join(work, "closed"), out("tree3")))
      expect(closed.message).toBe(`${path.join(work, "closed")}: not readable by user nobody (uid 65534)`)
    })
  )
})

/** A tar stream with these entries, as a peer could forge it. */
const hostileTar = async (
  entries: ReadonlyArray<Partial<tar.Header> & { readonly name: string; readonly content?: string }>,
  target: string
) => {
  const pack = tar.pack()
  for (const { content, ...header } of entries) pack.entry(header, content ?? "")
  pack.finalize()
  await pipeline(pack, extractInto(target))
}

describe("the tree intake refuses a hostile stream", () => {
  const target = (name: string) => {
    const dir = path.join(work, "extract", name)
    fs.mkdirSync(dir, { recursive: true })
    return dir
  }
  it("names that climb out or are absolute, and links, fail the whole intake", async () => {
    for (const [name, entry] of [
      ["dotdot", { name: "../escaped", type: "file" as const, content: "x" }],
      ["deep", { name: "a/../../escaped", type: "file" as const, content: "x" }],
      ["absolute", { name: "/etc/escaped", type: "file" as const, content: "x" }],
      ["symlink", { name: "link", type: "symlink" as const, linkname: "/etc/shadow" }],
      ["hardlink", { name: "hard", type: "link" as const, linkname: "/etc/shadow" }]
    ] as const) {
      await expect(hostileTar([entry], target(name))).rejects.toThrow()
    }
    expect(fs.existsSync(path.join(work, "extract", "escaped"))).toBe(false)
    expect(fs.existsSync(path.join(work, "escaped"))).toBe(false)
  })

  it("a bad entry fails the intake at once, with the rest of a large stream still coming", async () => {
    const started = Date.now()
    const big = "x".repeat(32 * 1024 * 1024)
    await expect(
      hostileTar(
        [
          { name: "link", type: "symlink", linkname: "/etc/shadow" },
          { name: "big", type: "file", content: big }
        ],
        target("early")
      )
    ).rejects.toThrow(/unexpected symlink entry/)
    expect(Date.now() - started).toBeLessThan(20_000)
    expect(fs.existsSync(path.join(work, "extract", "early", "big"))).toBe(false)
  })

  it("modes are masked to permissions without write for others or setuid", async () => {
    const dir = target("modes")
    await hostileTar([{ name: "./x", type: "file", mode: 0o6777, content: "x" }], dir)
    expect(fs.statSync(path.join(dir, "x")).mode & 0o7777).toBe(0o755)
  })
})

describe("a request's intake (clientPaths over a fake ClientFiles)", () => {
  const copied: Array<string> = []
  const fake = (daemonUid: number) =>
    ClientFiles.of({
      ...makeClientFiles(daemonUid),
      copyFileAs: (_peer, source, target) =>
        Effect.sync(() => {
          copied.push(source)
          fs.copyFileSync(source, target)
        }),
      copyTreeAs: (_peer, source, target) =>
        Effect.sync(() => {
          copied.push(source)
          fs.cpSync(source, target, { recursive: true })
        })
    })
  const services = (daemonUid: number, state: string) =>
    Layer.mergeAll(Layer.succeed(ClientFiles, fake(daemonUid)), StatePaths.layer(state), NodeContext.layer)
  const headers = (peer: Peer | undefined) =>
    Headers.fromInput(peer === undefined ? {} : { [PEER_HEADER]: encodePeer(peer) })
  const source = () => {
    const dir = path.join(work, "sources")
    fs.mkdirSync(path.join(dir, "6.1.0-x"), { recursive: true })
    fs.writeFileSync(path.join(dir, "vmlinuz"), FAKE_KERNEL_BYTES)
    fs.writeFileSync(path.join(dir, "notes.txt"), "text")
    return { kernel: path.join(dir, "vmlinuz"), modules: path.join(dir, "6.1.0-x"), text: path.join(dir, "notes.txt") }
  }

  it.effect("root, the daemon's user and in-process requests use paths as named; nothing is copied", () =>
    Effect.gen(function* () {
      const given = source()
      const state = path.join(work, "state-direct")
      for (const peer of [undefined, { ...NOBODY, uid: 0 }, { ...NOBODY, uid: 1000 }]) {
        const client = yield* clientPaths(headers(peer)).pipe(Effect.provide(services(1000, state)))
        expect(client.inPlace).toBe(true)
        expect(yield* client.kernelSource({ _tag: "Paths", kernel: given.kernel })).toEqual({
          _tag: "Paths",
          kernel: given.kernel
        })
      }
      expect(copied).toEqual([])
      expect(fs.existsSync(path.join(state, "tmp"))).toBe(false)
    })
  )

  it.effect("another user's paths become copies in one intake dir (names kept), gone on release", () =>
    Effect.gen(function* () {
      const given = source()
      const state = path.join(work, "state-peer")
      const client = yield* clientPaths(headers(NOBODY)).pipe(Effect.provide(services(0, state)))
      expect(client.inPlace).toBe(false)
      const admitted = yield* client.kernelSource({ _tag: "Paths", kernel: given.kernel, modules: given.modules })
      expect(copied).toEqual([given.kernel, given.modules])
      const [intake] = fs.readdirSync(path.join(state, "tmp"))
      expect(intake).toMatch(/-client-/)
      expect(admitted.kernel).toBe(path.join(state, "tmp", intake!, "0", "vmlinuz"))
      expect(path.basename(admitted.modules!)).toBe("6.1.0-x")
      expect(client.original(admitted.kernel)).toBe(given.kernel)
      // Errors naming a copy name the client's path instead.
      const named = client.shownAs(new FilesystemError({ path: admitted.kernel, reason: "r" }))
      expect(named).toEqual(new FilesystemError({ path: given.kernel, reason: "r" }))
      // A text file is not a kernel, said with the client's name for it.
      const notKernel = yield* Effect.flip(client.kernelSource({ _tag: "Paths", kernel: given.text }))
      expect(notKernel.message).toMatch(new RegExp(`^${given.text} is not a kernel image`))
      yield* client.release
      expect(fs.readdirSync(path.join(state, "tmp"))).toEqual([])
    })
  )

  it.effect("a daemon of another user refuses, naming the path and the user; register is refused for peers", () =>
    Effect.gen(function* () {
      const given = source()
      const state = path.join(work, "state-refused")
      const client = yield* clientPaths(headers(NOBODY)).pipe(Effect.provide(services(1000, state)))
      const error = yield* Effect.flip(client.file(given.kernel))
      expect(error).toBeInstanceOf(ClientPathRefused)
      expect(error.message).toMatch(/cannot read files with another user's rights/)
      const asRoot = yield* clientPaths(headers(NOBODY)).pipe(Effect.provide(services(0, state)))
      const register = yield* Effect.either(asRoot.refuseUnlessInPlace(given.kernel, "later"))
      expect(Either.isLeft(register) && register.left.reason).toBe("later")
    })
  )
})
