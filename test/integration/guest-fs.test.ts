/**
 * GuestFs on real images through real debugfs: usrmerged paths land in /usr, hostile symlinks
 * never reach the host, loops fail, and the image stays clean for e2fsck.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Ext4Tools } from "../../src/layers/ext4/ext4-tools.js"
import { GuestFs } from "../../src/layers/guest/guest-fs.js"
import { type TreeSpec, writeTree } from "../support/ext4-tree.js"
import { guestImage, runGuest } from "../support/guest-images.js"

const guest = <A, E>(use: (g: GuestFs["Type"]) => Effect.Effect<A, E>) => runGuest(Effect.flatMap(GuestFs, use))
const failure = <A, E>(use: (g: GuestFs["Type"]) => Effect.Effect<A, E>) =>
  runGuest(Effect.flip(Effect.flatMap(GuestFs, use)))

let work: string
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-guest-fs-"))
})
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))

const image = (name: string, specs: ReadonlyArray<TreeSpec>) => guestImage(work, name, specs)

const fsck = (file: string) => execFileSync("e2fsck", ["-fn", file], { stdio: "pipe", encoding: "utf8" })

const usrmerged: ReadonlyArray<TreeSpec> = [
  { path: "usr", type: "directory", mode: 0o755 },
  { path: "usr/sbin", type: "directory", mode: 0o755 },
  { path: "usr/lib", type: "directory", mode: 0o755 },
  { path: "usr/lib/os-release", type: "file", mode: 0o644, content: "ID=debian\n" },
  { path: "sbin", type: "symlink", mode: 0o777, target: "usr/sbin" },
  { path: "lib", type: "symlink", mode: 0o777, target: "/usr/lib" },
  { path: "etc", type: "directory", mode: 0o755 },
  { path: "etc/os-release", type: "symlink", mode: 0o777, target: "../usr/lib/os-release" },
  { path: "tmp", type: "directory", mode: 0o1777 }
]

describe("GuestFs on a usrmerged image", () => {
  it("follows symlinked directories inside the image for every operation", async () => {
    const file = await image("usrmerged", usrmerged)
    await guest((g) => g.writeFile(file, "/sbin/banger-tool", "#!/bin/sh\n", { mode: 0o750, uid: 1000, gid: 50 }))
    const listed = await guest((g) => g.list(file, "/usr/sbin"))
    expect(listed.map((entry) => [entry.name, entry.kind, entry.mode, entry.uid, entry.gid, entry.size])).toEqual([
      ["banger-tool", "file", 0o750, 1000, 50, 10]
    ])
    expect(await guest((g) => g.realpath(file, "/sbin/banger-tool"))).toBe("/usr/sbin/banger-tool")
    expect(Buffer.from(await guest((g) => g.readFile(file, "/etc/os-release"))).toString()).toBe("ID=debian\n")
    expect((await guest((g) => g.lstat(file, "/etc/os-release")))?.kind).toBe("symlink")

    await guest((g) => g.mkdirp(file, "/lib/modules/6.1.0/kernel", { mode: 0o700 }))
    expect(await guest((g) => g.realpath(file, "/lib/modules/6.1.0/kernel"))).toBe("/usr/lib/modules/6.1.0/kernel")
    expect((await guest((g) => g.stat(file, "/usr/lib/modules/6.1.0/kernel")))?.mode).toBe(0o700)
    expect((await guest((g) => g.stat(file, "/usr/lib/modules")))?.mode).toBe(0o755)
    // mkdir -p of what exists is fine; of a file is not.
    await guest((g) => g.mkdirp(file, "/lib/modules"))
    expect((await failure((g) => g.mkdirp(file, "/sbin/banger-tool")))._tag).toBe("GuestPathError")

    // Replacing keeps one entry and takes the new content.
    await guest((g) => g.writeFile(file, "/usr/sbin/banger-tool", "v2"))
    expect(Buffer.from(await guest((g) => g.readFile(file, "/sbin/banger-tool"))).toString()).toBe("v2")
    expect((await guest((g) => g.list(file, "/sbin"))).map((entry) => entry.name)).toEqual(["banger-tool"])

    await guest((g) => g.symlink(file, "/etc/alias", "/sbin/banger-tool"))
    expect(Buffer.from(await guest((g) => g.readFile(file, "/etc/alias"))).toString()).toBe("v2")
    expect((await failure((g) => g.symlink(file, "/etc/alias", "x")))._tag).toBe("GuestPathError")
    expect(await guest((g) => g.exists(file, "/etc/missing"))).toBe(false)
    expect(await guest((g) => g.exists(file, "/lib/os-release"))).toBe(true)
    // Names with spaces and quotes go through debugfs's quoting intact.
    await guest((g) => g.writeFile(file, '/tmp/a "quoted" name', "q"))
    expect(Buffer.from(await guest((g) => g.readFile(file, '/tmp/a "quoted" name'))).toString()).toBe("q")
    fsck(file)
  })

  it("copies a host directory in recursively, modes and symlinks kept, owned by root", async () => {
    const file = await image("copyin", usrmerged)
    const host = fs.mkdtempSync(path.join(work, "host-tree-"))
    fs.mkdirSync(path.join(host, "kernel/drivers"), { recursive: true })
    fs.writeFileSync(path.join(host, "kernel/drivers/a.ko"), "module-a")
    fs.writeFileSync(path.join(host, "modules.dep"), "kernel/drivers/a.ko:\n")
    fs.chmodSync(path.join(host, "modules.dep"), 0o600)
    fs.symlinkSync("/usr/src/linux", path.join(host, "build"))
    const summary = await guest((g) => g.copyIn(file, host, "/lib/modules/9.9"))
    expect(summary).toEqual({ files: 2, directories: 2, symlinks: 1, bytes: 8 + 21 })
    const read = (p: string) => guest((g) => g.readFile(file, p)).then((bytes) => Buffer.from(bytes).toString())
    expect(await read("/usr/lib/modules/9.9/kernel/drivers/a.ko")).toBe("module-a")
    const dep = await guest((g) => g.stat(file, "/lib/modules/9.9/modules.dep"))
    expect([dep?.mode, dep?.uid, dep?.gid]).toEqual([0o600, 0, 0])
    expect((await guest((g) => g.lstat(file, "/lib/modules/9.9/build")))?.size).toBe("/usr/src/linux".length)
    expect((await failure((g) => g.copyIn(file, host, "/lib/modules/9.9")))._tag).toBe("GuestPathError")
    fsck(file)
  })
})

describe("GuestFs.apply", () => {
  it("checks a whole batch, each edit seeing the ones before it, and writes nothing when one is invalid", async () => {
    const file = await image("batch", usrmerged)
    const before = fs.readFileSync(file)
    const error = await failure((g) =>
      g.apply(file, [
        { _tag: "Mkdirp", path: "/lib/new/dir" },
        { _tag: "WriteFile", path: "/lib/new/dir/file", content: "x" },
        { _tag: "WriteFile", path: "/lib/missing/file", content: "y" }
      ])
    )
    expect(error.message).toContain("/usr/lib/missing does not exist")
    expect(fs.readFileSync(file).equals(before)).toBe(true)

    await guest((g) =>
      g.apply(file, [
        { _tag: "Mkdirp", path: "/lib/new/dir", options: { mode: 0o700 } },
        { _tag: "Symlink", path: "/lib/new/link", target: "dir" },
        { _tag: "WriteFile", path: "/lib/new/link/file", content: "through a new link", options: { uid: 7 } }
      ])
    )
    const written = await guest((g) => g.stat(file, "/usr/lib/new/dir/file"))
    expect([written?.kind, written?.uid, written?.size]).toEqual(["file", 7, 18])
    expect((await guest((g) => g.stat(file, "/usr/lib/new/dir")))?.mode).toBe(0o700)
    fsck(file)
  })

  it("copies the Debian cloud kernel's modules tree in (timed)", async () => {
    const version = fs.readdirSync("/lib/modules").find((name) => name.endsWith("-cloud-amd64"))
    expect(version, "linux-image-cloud-amd64 is installed").toBeDefined()
    const dir = fs.mkdtempSync(path.join(work, "modules-"))
    const tree = writeTree(path.join(dir, "tree"), usrmerged)
    const file = path.join(dir, "rootfs.ext4")
    await runGuest(Effect.flatMap(Ext4Tools, (tools) => tools.build({ tree, output: file, sizeBytes: 256 * 2 ** 20 })))
    const started = performance.now()
    const summary = await guest((g) => g.copyIn(file, `/lib/modules/${version}`, `/lib/modules/${version}`))
    const ms = performance.now() - started
    console.log(
      `modules ${version}: ${summary.files} files, ${summary.directories} directories, ` +
        `${(summary.bytes / 2 ** 20).toFixed(1)} MiB copied in ${ms.toFixed(0)} ms`
    )
    expect(summary.files).toBeGreaterThan(100)
    const dep = await guest((g) => g.readFile(file, `/lib/modules/${version}/modules.dep`))
    expect(Buffer.from(dep).equals(fs.readFileSync(`/lib/modules/${version}/modules.dep`))).toBe(true)
    fsck(file)
  }, 120_000)
})

describe("GuestFs with hostile symlinks", () => {
  const sentinel = `banger-guest-fs-sentinel-${process.pid}`
  const hostSentinel = path.join(os.tmpdir(), sentinel)
  beforeAll(() => fs.writeFileSync(hostSentinel, "host file"))
  afterAll(() => fs.rmSync(hostSentinel, { force: true }))

  it("keeps every write inside the image or fails with GuestPathError", async () => {
    const file = await image("hostile", [
      { path: "etc", type: "symlink", mode: 0o777, target: "../../../../host-etc" },
      { path: "proc", type: "directory", mode: 0o555 },
      { path: "tmp", type: "directory", mode: 0o1777 },
      { path: "conf", type: "directory", mode: 0o755 },
      { path: "conf/hostname", type: "symlink", mode: 0o777, target: "/proc/self/environ" },
      // Climbs "above" the root to a path that exists on the host: inside the image it is /tmp/<name>.
      { path: "conf/passwd", type: "symlink", mode: 0o777, target: `../../../../..${hostSentinel}` },
      { path: "loop-a", type: "symlink", mode: 0o777, target: "loop-b" },
      { path: "loop-b", type: "symlink", mode: 0o777, target: "/loop-a" },
      { path: "self", type: "symlink", mode: 0o777, target: "." }
    ])
    const etc = await failure((g) => g.writeFile(file, "/etc/hostname", "x"))
    expect(etc._tag).toBe("GuestPathError")
    expect(etc.message).toContain("/host-etc does not exist")
    expect((await failure((g) => g.mkdirp(file, "/etc/ssh")))._tag).toBe("GuestPathError")
    expect(fs.existsSync("/host-etc")).toBe(false)

    const proc = await failure((g) => g.writeFile(file, "/conf/hostname", "x"))
    expect(proc._tag).toBe("GuestPathError")
    expect(proc.message).toContain("/proc/self does not exist")

    await guest((g) => g.writeFile(file, "/conf/passwd", "inside"))
    expect(fs.readFileSync(hostSentinel, "utf8")).toBe("host file")
    expect(await guest((g) => g.realpath(file, "/conf/passwd"))).toBe(hostSentinel)
    expect(Buffer.from(await guest((g) => g.readFile(file, hostSentinel))).toString()).toBe("inside")

    const loop = await failure((g) => g.stat(file, "/loop-a/x"))
    expect(loop._tag).toBe("GuestPathError")
    expect(loop.message).toContain("too many levels of symbolic links")
    expect(await guest((g) => g.realpath(file, "/self/self/../../../tmp"))).toBe("/tmp")
    fsck(file)
  })
})
