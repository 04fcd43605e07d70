/** The real HostProbe against this machine's own files, devices and programs. */
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { elfLinkage } from "../../src/layers/host/elf.js"
import { HostProbe } from "../../src/layers/host/host-probe.js"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "host-probe-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const findOnPath = (command: string) =>
  (process.env.PATH ?? "")
    .split(":")
    .map((entry) => path.join(entry, command))
    .find((file) => fs.existsSync(file))

describe("elfLinkage", () => {
  it("tells a static executable (busybox-static) from a dynamic one (the node binary) and from text", () => {
    const head = (file: string) => fs.readFileSync(file).subarray(0, 64 * 1024)
    expect(elfLinkage(head("/bin/busybox"))).toBe("static")
    expect(elfLinkage(head(process.execPath))).toBe("dynamic")
    expect(elfLinkage(Buffer.from("#!/bin/sh\necho hi\n".padEnd(100)))).toBe("not-elf")
    // A header whose program headers lie past what was read is not trusted to be static.
    expect(elfLinkage(head(process.execPath).subarray(0, 64))).toBe("not-elf")
  })
})

layer(HostProbe.layer.pipe(Layer.provide(NodeContext.layer)))("HostProbe (real)", (it) => {
  it.effect("stat tells kinds and modes; a missing path is undefined", () =>
    Effect.gen(function* () {
      const host = yield* HostProbe
      expect(yield* host.stat("/dev/null")).toMatchObject({ kind: "character-device", mode: 0o666 })
      expect((yield* host.stat(dir))?.kind).toBe("directory")
      expect(yield* host.stat(path.join(dir, "missing"))).toBeUndefined()
    })
  )

  it.effect("stat sees a listening Unix socket and its mode", () =>
    Effect.gen(function* () {
      const host = yield* HostProbe
      const socket = path.join(dir, "s.sock")
      const server = net.createServer()
      yield* Effect.promise(() => new Promise<void>((resolve) => server.listen(socket, resolve)))
      fs.chmodSync(socket, 0o600)
      const info = yield* host.stat(socket)
      yield* Effect.promise(() => new Promise((resolve) => server.close(resolve)))
      expect(info).toMatchObject({ kind: "socket", mode: 0o600 })
    })
  )

  it.effect("open and writable answer Granted, or Denied with the errno code", () =>
    Effect.gen(function* () {
      const host = yield* HostProbe
      expect(yield* host.open("/dev/null", "read-write")).toEqual({ _tag: "Granted" })
      expect(yield* host.open(path.join(dir, "missing"), "read")).toMatchObject({ _tag: "Denied", code: "ENOENT" })
      expect(yield* host.writable(dir)).toEqual({ _tag: "Granted" })
      expect(fs.readdirSync(dir).filter((name) => name.startsWith(".banger-doctor"))).toEqual([])
      expect(yield* host.writable(path.join(dir, "missing"))).toMatchObject({ _tag: "Denied", code: "ENOENT" })
    })
  )

  it.effect("which follows PATH; run returns exit code and output, or null when the program cannot start", () =>
    Effect.gen(function* () {
      const host = yield* HostProbe
      const e2fsck = yield* host.which("e2fsck")
      expect(e2fsck).toBe(findOnPath("e2fsck"))
      expect(yield* host.which("no-such-banger-tool")).toBeUndefined()
      const version = yield* host.run(e2fsck!, ["-V"])
      expect(version.exitCode).toBe(0)
      expect(version.output).toMatch(/^e2fsck \d+\.\d+/)
      expect((yield* host.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"])).exitCode).toBe(3)
      expect(yield* host.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"])).toEqual({
        exitCode: 3,
        output: "out\nerr"
      })
      const missing = yield* host.run(path.join(dir, "missing"), [])
      expect(missing.exitCode).toBeNull()
      expect(missing.output).toMatch(/ENOENT/)
    })
  )

  it.effect("readText reads /proc/sys; linkage reads the ELF headers; space is statfs of the directory", () =>
    Effect.gen(function* () {
      const host = yield* HostProbe
      const forward = yield* host.readText("/proc/sys/net/ipv4/ip_forward")
      expect(forward?.trim()).toBe(fs.readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim())
      expect(yield* host.readText(path.join(dir, "missing"))).toBeUndefined()
      expect(yield* host.linkage("/bin/busybox")).toBe("static")
      expect(yield* host.linkage(process.execPath)).toBe("dynamic")
      expect(yield* host.linkage(path.join(dir, "missing"))).toBe("not-elf")
      const space = yield* host.space(dir)
      const expected = fs.statfsSync(dir)
      expect(space.totalBytes).toBe(expected.blocks * expected.bsize)
      expect(space.availableBytes).toBeGreaterThan(0)
      expect(space.availableBytes).toBeLessThanOrEqual(space.totalBytes)
      expect((yield* Effect.flip(host.space(path.join(dir, "missing")))).message).toMatch(/ENOENT/)
    })
  )
})
