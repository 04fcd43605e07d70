/**
 * `image register`, `image promote` and `image delete` through the real CLI and daemon, on real
 * ext4 files made with mkfs.ext4: every refusal is one `banger:` line and leaves nothing behind.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { BangerClient } from "../../src/rpc/client.js"
import { expectOneLineError, type RunningDaemon, runBanger, startBangerDaemon } from "../support/banger-cli.js"
import { findCloudKernel } from "../support/qemu.js"
import { imageRows, leftovers, nothingLeft } from "../support/state-leftovers.js"

const MiB = 1024 * 1024

let work: string
let state: string
let daemon: RunningDaemon
let hostBoot: { kernel: string; initrd: string }

const banger = (...args: Array<string>) => runBanger(["--state-dir", state, ...args])

/** A fresh directory of sources: a sparse 64 MiB ext4 holding one file, a kernel, an initrd, modules. */
const makeSources = (label: string) => {
  const dir = fs.mkdtempSync(path.join(work, `${label}-`))
  const tree = path.join(dir, "tree")
  fs.mkdirSync(path.join(tree, "etc"), { recursive: true })
  fs.writeFileSync(path.join(tree, "etc", "hostname"), `${label}\n`)
  const rootfs = path.join(dir, "rootfs.ext4")
  execFileSync("mkfs.ext4", ["-q", "-F", "-L", label, "-d", tree, rootfs, "64M"], { stdio: "pipe" })
  const kernel = path.join(dir, "vmlinuz")
  const initrd = path.join(dir, "initrd.img")
  fs.copyFileSync(hostBoot.kernel, kernel)
  fs.copyFileSync(hostBoot.initrd, initrd)
  const modules = path.join(dir, "modules", "6.1.0-test")
  fs.mkdirSync(path.join(modules, "kernel", "fs"), { recursive: true })
  fs.writeFileSync(path.join(modules, "kernel", "fs", "ext4.ko"), "module bytes")
  fs.writeFileSync(path.join(modules, "modules.dep"), "kernel/fs/ext4.ko:\n")
  return { dir, rootfs, kernel, initrd, modules }
}

const register = (name: string, rootfs: string, ...kernelArgs: Array<string>) =>
  banger("image", "register", name, "--rootfs", rootfs, ...kernelArgs, "--json")

const sameBytes = (a: string, b: string) => fs.readFileSync(a).equals(fs.readFileSync(b))
const mtimeMs = (file: string) => fs.statSync(file).mtime.getTime()

/** The state dir holds only what it held before: no staging dirs, orphan image dirs or temp files. */
const expectNothingLeft = () => expect(leftovers(state)).toEqual(nothingLeft)

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-register-"))
  state = path.join(work, "state")
  hostBoot = await findCloudKernel()
  daemon = await startBangerDaemon(state)
})

afterAll(async () => {
  const stopped = await daemon?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
  expect(stopped?.code, stopped?.stderr).toBe(0)
})

describe("image register (CLI → daemon)", () => {
  it("records an unmanaged image whose files stay where they are", async () => {
    const src = makeSources("plain")
    const before = fs.readFileSync(src.rootfs)
    const registered = await register(
      "plain",
      src.rootfs,
      "--kernel",
      src.kernel,
      "--initrd",
      src.initrd,
      "--modules",
      src.modules
    )
    expect(registered.code, registered.stderr).toBe(0)
    const image = JSON.parse(registered.stdout)
    expect(image).toMatchObject({
      name: "plain",
      managed: false,
      ref: null,
      rootfs: src.rootfs,
      kernel: src.kernel,
      initrd: src.initrd,
      modules: src.modules,
      kernelName: null,
      sizeBytes: 64 * MiB,
      sources: {
        rootfs: { size: 64 * MiB, mtimeMs: mtimeMs(src.rootfs) },
        kernel: { size: fs.statSync(src.kernel).size, mtimeMs: mtimeMs(src.kernel) },
        initrd: { size: fs.statSync(src.initrd).size, mtimeMs: mtimeMs(src.initrd) }
      }
    })
    // Nothing was copied: the files are the user's, untouched; the store holds only the row.
    expect(fs.readFileSync(src.rootfs).equals(before)).toBe(true)
    expect(fs.existsSync(path.join(state, "images", image.id))).toBe(false)
    expect(JSON.parse((await banger("image", "show", "plain", "--json")).stdout)).toEqual(image)
    expect((await banger("image", "show", "plain")).stdout).toMatch(/managed:\s+false/)
    const ops = JSON.parse((await banger("op", "list", "--json")).stdout)
    expect(ops.find((op: { target: string }) => op.target === "plain")).toMatchObject({
      kind: "image.register",
      state: "succeeded"
    })

    // Deleting an unmanaged image drops the row and nothing else.
    const deleted = await banger("image", "delete", "plain")
    expect(deleted.code, deleted.stderr).toBe(0)
    expect(imageRows(state).map((row) => row.name)).not.toContain("plain")
    for (const file of [src.rootfs, src.kernel, src.initrd, path.join(src.modules, "modules.dep")]) {
      expect(fs.existsSync(file), file).toBe(true)
    }
    expect(fs.readFileSync(src.rootfs).equals(before)).toBe(true)
    expectNothingLeft()
  })

  it("with --kernel-ref: the stored kernel's files, and its name", async () => {
    const src = makeSources("byref")
    const kernel = await banger("kernel", "register", "regkernel", "--kernel", src.kernel, "--initrd", src.initrd)
    expect(kernel.code, kernel.stderr).toBe(0)
    const registered = await register("byref", src.rootfs, "--kernel-ref", "regkernel")
    expect(registered.code, registered.stderr).toBe(0)
    const image = JSON.parse(registered.stdout)
    const stored = path.join(state, "kernels", "regkernel")
    expect(image).toMatchObject({
      managed: false,
      rootfs: src.rootfs,
      kernel: path.join(stored, "kernel"),
      initrd: path.join(stored, "initrd.img"),
      modules: null,
      kernelName: "regkernel"
    })
    expect((await banger("image", "delete", "byref")).code).toBe(0)
    expect((await banger("kernel", "delete", "regkernel")).code).toBe(0)
    expectNothingLeft()
  })

  it("refuses bad input with one line, before anything is recorded", async () => {
    const src = makeSources("bad")
    const kernelArgs = ["--kernel", src.kernel]
    const taken = await register("taken", src.rootfs, ...kernelArgs)
    expect(taken.code, taken.stderr).toBe(0)
    const rowsBefore = imageRows(state)
    const opsBefore = JSON.parse((await banger("op", "list", "--json")).stdout).length

    const notExt4 = path.join(src.dir, "junk", "rootfs.ext4")
    fs.mkdirSync(path.dirname(notExt4))
    fs.writeFileSync(notExt4, Buffer.alloc(4 * MiB, 0x5a))
    const truncated = path.join(src.dir, "truncated.ext4")
    fs.copyFileSync(src.rootfs, truncated)
    fs.truncateSync(truncated, 32 * MiB)
    const tiny = path.join(src.dir, "tiny.ext4")
    fs.writeFileSync(tiny, "too small")

    const refusals: Array<[Array<string>, RegExp]> = [
      [["image", "register", "x", "--rootfs", path.join(src.dir, "missing.ext4"), ...kernelArgs], /does not exist/],
      [["image", "register", "x", "--rootfs", src.dir, ...kernelArgs], /must be a regular file, not a directory/],
      [["image", "register", "x", "--rootfs", notExt4, ...kernelArgs], /not an ext4 filesystem: no superblock magic/],
      [["image", "register", "x", "--rootfs", truncated, ...kernelArgs], /truncated ext4 filesystem/],
      [["image", "register", "x", "--rootfs", tiny, ...kernelArgs], /too small to hold a superblock/],
      [["image", "register", "taken", "--rootfs", src.rootfs, ...kernelArgs], /image "taken" already exists/],
      [["image", "register", "../x", "--rootfs", src.rootfs, ...kernelArgs], /invalid name "\.\.\/x"/],
      [["image", "register", "x", "--rootfs", src.rootfs], /no kernel: pass --kernel/],
      [
        ["image", "register", "x", "--rootfs", src.rootfs, "--kernel", path.join(src.dir, "nokernel")],
        /kernel does not exist/
      ],
      [["image", "register", "x", "--rootfs", src.rootfs, "--kernel-ref", "nope"], /"nope"/],
      [["image", "register", "x", "--rootfs", src.rootfs, "--kernel-ref", "k", ...kernelArgs], /either --kernel-ref/]
    ]
    for (const [args, pattern] of refusals) {
      const result = await banger(...args)
      expectOneLineError(result, pattern)
      expect(result.stderr).toMatch(/^banger: /)
    }
    // With --json the error is an object on stdout.
    const json = await banger("image", "register", "x", "--rootfs", notExt4, ...kernelArgs, "--json")
    expect(json.code).not.toBe(0)
    expect(JSON.parse(json.stdout).error._tag).toBe("InvalidRootfs")

    // Relative paths cannot arrive through the CLI (it makes them absolute); the daemon refuses them.
    const overRpc = await Effect.runPromise(
      Effect.gen(function* () {
        const client = yield* BangerClient
        const rootfs = yield* Effect.flip(
          client.image.register({ name: "x", rootfs: "rootfs.ext4", kernel: { _tag: "Paths", kernel: src.kernel } })
        )
        const kernel = yield* Effect.flip(
          client.image.register({ name: "x", rootfs: src.rootfs, kernel: { _tag: "Paths", kernel: "vmlinuz" } })
        )
        return [rootfs, kernel] as const
      }).pipe(Effect.scoped, Effect.provide(BangerClient.layer({ socket: daemon.socket })))
    )
    expect(overRpc.map((error) => error.message)).toEqual([
      "invalid rootfs rootfs.ext4: must be an absolute path",
      "invalid kernel input vmlinuz: kernel must be an absolute path"
    ])

    expect(imageRows(state)).toEqual(rowsBefore)
    expect(JSON.parse((await banger("op", "list", "--json")).stdout)).toHaveLength(opsBefore)
    expect((await banger("image", "delete", "taken")).code).toBe(0)
    expectNothingLeft()
  })
})

describe("image promote (CLI → daemon)", () => {
  it("copies the files into the store byte-exact and sparse; the originals can go", async () => {
    const src = makeSources("promo")
    const registered = await register(
      "promo",
      src.rootfs,
      "--kernel",
      src.kernel,
      "--initrd",
      src.initrd,
      "--modules",
      src.modules
    )
    expect(registered.code, registered.stderr).toBe(0)
    const before = JSON.parse(registered.stdout)

    const detached = await banger("image", "promote", "promo", "--detach")
    expect(detached.code, detached.stderr).toBe(0)
    const id = detached.stdout.trim()
    const watched = await banger("op", "watch", id)
    expect(watched.code, watched.stderr).toBe(0)
    expect(watched.stdout).toContain(`operation ${id} succeeded: promo →`)
    expect(JSON.parse((await banger("op", "status", id, "--json")).stdout)).toMatchObject({
      kind: "image.promote",
      target: "promo",
      state: "succeeded",
      stage: "publish"
    })

    const dir = path.join(state, "images", before.id)
    const image = JSON.parse((await banger("image", "show", "promo", "--json")).stdout)
    expect(image).toEqual({
      ...before,
      managed: true,
      rootfs: path.join(dir, "rootfs.ext4"),
      kernel: path.join(dir, "kernel"),
      initrd: path.join(dir, "initrd.img"),
      modules: path.join(dir, "modules"),
      sources: null
    })
    expect(sameBytes(image.rootfs, src.rootfs)).toBe(true)
    expect(sameBytes(image.kernel, src.kernel)).toBe(true)
    expect(sameBytes(image.initrd, src.initrd)).toBe(true)
    expect(fs.readFileSync(path.join(image.modules, "kernel", "fs", "ext4.ko"), "utf8")).toBe("module bytes")
    // Holes stay holes: the copy allocates no more than mkfs wrote (a reflink shares even that).
    const copied = fs.statSync(image.rootfs)
    expect(copied.size).toBe(64 * MiB)
    expect(copied.blocks * 512).toBeLessThanOrEqual(fs.statSync(src.rootfs).blocks * 512)
    expect(copied.blocks * 512).toBeLessThan(16 * MiB)
    execFileSync("e2fsck", ["-fn", image.rootfs], { stdio: "pipe" })

    fs.rmSync(src.dir, { recursive: true, force: true })
    const listed = JSON.parse((await banger("image", "list", "--json")).stdout)
    expect(listed.find((entry: { name: string }) => entry.name === "promo")).toEqual(image)
    expect(fs.existsSync(image.rootfs)).toBe(true)
    expectNothingLeft()

    expectOneLineError(
      await banger("image", "promote", "promo"),
      /image "promo" cannot be promoted: it is already managed/
    )
    expectOneLineError(await banger("image", "promote", "ghost"), /image "ghost" not found/)

    // Deleting a managed image removes its files with it.
    expect((await banger("image", "delete", "promo")).code).toBe(0)
    expect(fs.existsSync(dir)).toBe(false)
    expect(imageRows(state).map((row) => row.name)).not.toContain("promo")
    expectNothingLeft()
  })

  it("refuses a source that changed or vanished since registration, copying nothing", async () => {
    const src = makeSources("changing")
    const kernelArgs = ["--kernel", src.kernel, "--initrd", src.initrd]
    const cases: Array<[string, (file: string) => void, RegExp]> = [
      [
        "touched",
        (file) => fs.utimesSync(file, new Date(), new Date(Date.now() + 5_000)),
        /changed since it was registered \(modified /
      ],
      ["grown", (file) => fs.appendFileSync(file, Buffer.alloc(4096, 1)), /size 67108864 → 67112960 bytes/],
      ["vanished", (file) => fs.rmSync(file), /vanished since it was registered/],
      [
        "replaced",
        (file) => {
          fs.rmSync(file)
          fs.mkdirSync(file)
        },
        /is no longer a regular file \(now a directory\)/
      ]
    ]
    for (const [label, change, pattern] of cases) {
      const rootfs = path.join(src.dir, `${label}.ext4`)
      fs.copyFileSync(src.rootfs, rootfs)
      const registered = await register(label, rootfs, ...kernelArgs)
      expect(registered.code, registered.stderr).toBe(0)
      const before = JSON.parse(registered.stdout)
      change(rootfs)
      const refused = await banger("image", "promote", label)
      expectOneLineError(refused, new RegExp(`image "${label}" cannot be promoted: ${rootfs.replaceAll(".", "\\.")} `))
      expect(refused.stderr).toMatch(pattern)
      expect(JSON.parse((await banger("image", "show", label, "--json")).stdout)).toEqual(before)
      expectNothingLeft()
      expect(fs.existsSync(path.join(state, "images", before.id))).toBe(false)
    }

    // The kernel is checked too: it is copied with the rootfs.
    const rootfs = path.join(src.dir, "kernel-changed.ext4")
    fs.copyFileSync(src.rootfs, rootfs)
    expect((await register("kernel-changed", rootfs, ...kernelArgs)).code).toBe(0)
    fs.appendFileSync(src.kernel, "x")
    expectOneLineError(
      await banger("image", "promote", "kernel-changed"),
      new RegExp(`cannot be promoted: ${src.kernel.replaceAll(".", "\\.")} changed since it was registered`)
    )

    for (const [label] of cases) expect((await banger("image", "delete", label)).code).toBe(0)
    expect((await banger("image", "delete", "kernel-changed")).code).toBe(0)
    expectNothingLeft()
  })
})
