/**
 * `./bin/banger image pull` of a hand-made three-layer image (gzip, zstd, uncompressed) from a real
 * registry: the ext4 must hold exactly what the layers say — every type, mode, owner, mtime,
 * content, link, device and xattr — and nothing else.
 */

import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { errorLines, runBanger, withBangerDaemon } from "../support/banger-cli.js"
import { type ImageEntry, inspectImage, readFilesFromImage } from "../support/ext4-inspect.js"
import { buildLayer, type LayerEntrySpec } from "../support/layers.js"
import { findCloudKernel } from "../support/qemu.js"
import { pushImage, startRegistry, type TestRegistry } from "../support/registry.js"
import { leftovers, nothingLeft } from "../support/state-leftovers.js"

const T = 1_600_000_000
// security.capability v2 granting cap_net_raw (bit 13) permitted+effective: bytes ≥ 0x80 included.
const capability = Uint8Array.from([
  0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00
])
const longName = `${"l".repeat(120)}-${"o".repeat(120)}`
const unicodeName = 'naïve-日本語 space\'s "quote".txt'
const longTarget = `/usr/share/${"deep/".repeat(20)}target`

const dir = (name: string, extra: Partial<LayerEntrySpec> = {}): LayerEntrySpec =>
  ({ type: "directory", name, mode: 0o755, mtime: T, ...extra }) as LayerEntrySpec
const file = (name: string, content: string, extra: Partial<LayerEntrySpec> = {}): LayerEntrySpec =>
  ({ type: "file", name, content, mode: 0o644, mtime: T, ...extra }) as LayerEntrySpec

const layer1: ReadonlyArray<LayerEntrySpec> = [
  dir("./", { mode: 0o755, mtime: T + 1 }),
  dir("etc"),
  file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", { xattrs: { "user.comment": "lower" } }),
  dir("usr"),
  dir("usr/bin"),
  file("usr/bin/sudo", "#!/bin/sh\necho sudo\n", { mode: 0o4755 }),
  file("usr/bin/ping", "ping", { mode: 0o755, xattrs: { "security.capability": capability } }),
  file("usr/bin/vi", "vi binary", { mode: 0o755, mtime: T + 5 }),
  // Link headers carry the inode's metadata, as Go's archive/tar writes them.
  { type: "hardlink", name: "usr/bin/vim", target: "usr/bin/vi", mode: 0o755, mtime: T + 5 },
  dir("usr/share"),
  file(`usr/share/${unicodeName}`, "unicode"),
  file(`usr/share/${longName}`, "long"),
  { type: "symlink", name: "bin", target: "usr/bin", mtime: T },
  { type: "symlink", name: "etc/localtime", target: "/usr/share/zoneinfo/UTC", mtime: T },
  { type: "symlink", name: "usr/share/far", target: longTarget, mtime: T },
  dir("tmp", { mode: 0o1777 }),
  dir("home"),
  dir("home/user", { mode: 0o2750, uid: 1000, gid: 1000 }),
  file("home/user/notes", "mine", { mode: 0o600, uid: 1000, gid: 1000, mtime: T + 7 }),
  dir("srv"),
  file("srv/big-ids", "ids", { uid: 3_000_000, gid: 4_000_000 }),
  dir("srv/gone"),
  file("srv/gone/a", "a"),
  dir("dev"),
  { type: "char", name: "dev/null", major: 1, minor: 3, mode: 0o666, mtime: T },
  { type: "block", name: "dev/sda", major: 8, minor: 0, mode: 0o660, gid: 6, mtime: T },
  { type: "fifo", name: "dev/pipe", mode: 0o644, mtime: T },
  dir("old"),
  file("old/a", "old a"),
  file("old/b", "old b"),
  dir("opq"),
  file("opq/x", "x"),
  file("opq/y", "y"),
  file("will-be-dir", "was a file"),
  dir("will-be-file"),
  file("will-be-file/child", "child")
]

const layer2: ReadonlyArray<LayerEntrySpec> = [
  dir("old", { mtime: T + 20 }),
  file("old/.wh.a", ""),
  dir("opq", { mtime: T + 20 }),
  file("opq/z", "z"),
  file("opq/.wh..wh..opq", ""),
  dir("will-be-dir", { mode: 0o700 }),
  file("will-be-dir/inside", "now a dir"),
  file("will-be-file", "now a file", { mode: 0o640 }),
  { type: "hardlink", name: "usr/bin/view", target: "usr/bin/vi", mode: 0o755, mtime: T + 5 },
  file("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n", { mode: 0o600, xattrs: { "user.comment": "upper" } })
]

const layer3: ReadonlyArray<LayerEntrySpec> = [
  dir("srv", { mtime: T + 30 }),
  file("srv/.wh.gone", ""),
  file("etc/motd", "hello\n", { mtime: T + 30 })
]

interface Expected {
  readonly type: ImageEntry["type"]
  readonly mode: number
  readonly uid?: number
  readonly gid?: number
  readonly mtime?: number
  readonly content?: string
  readonly target?: string
  readonly dev?: readonly [number, number]
  readonly xattrs?: Record<string, Uint8Array | string>
  /** Entries naming the same inode share this key. */
  readonly inode?: string
}

const d = (mode = 0o755, extra: Partial<Expected> = {}): Expected => ({ type: "directory", mode, mtime: T, ...extra })
const f = (content: string, mode = 0o644, extra: Partial<Expected> = {}): Expected => ({
  type: "file",
  mode,
  mtime: T,
  content,
  ...extra
})

const expected: Record<string, Expected> = {
  "": d(0o755, { mtime: T + 1 }),
  etc: d(),
  "etc/passwd": f("root:x:0:0:root:/root:/bin/bash\n", 0o600, { xattrs: { "user.comment": "upper" } }),
  "etc/localtime": { type: "symlink", mode: 0o777, target: "/usr/share/zoneinfo/UTC" },
  "etc/motd": f("hello\n", 0o644, { mtime: T + 30 }),
  usr: d(),
  "usr/bin": d(),
  "usr/bin/sudo": f("#!/bin/sh\necho sudo\n", 0o4755),
  "usr/bin/ping": f("ping", 0o755, { xattrs: { "security.capability": capability } }),
  "usr/bin/vi": f("vi binary", 0o755, { mtime: T + 5, inode: "vi" }),
  "usr/bin/vim": f("vi binary", 0o755, { mtime: T + 5, inode: "vi" }),
  "usr/bin/view": f("vi binary", 0o755, { mtime: T + 5, inode: "vi" }),
  "usr/share": d(),
  [`usr/share/${unicodeName}`]: f("unicode"),
  [`usr/share/${longName}`]: f("long"),
  "usr/share/far": { type: "symlink", mode: 0o777, target: longTarget },
  bin: { type: "symlink", mode: 0o777, target: "usr/bin" },
  tmp: d(0o1777),
  home: d(),
  "home/user": d(0o2750, { uid: 1000, gid: 1000 }),
  "home/user/notes": f("mine", 0o600, { uid: 1000, gid: 1000, mtime: T + 7 }),
  srv: d(0o755, { mtime: T + 30 }),
  "srv/big-ids": f("ids", 0o644, { uid: 3_000_000, gid: 4_000_000 }),
  dev: d(),
  "dev/null": { type: "char", mode: 0o666, dev: [1, 3] },
  "dev/sda": { type: "block", mode: 0o660, gid: 6, dev: [8, 0] },
  "dev/pipe": { type: "fifo", mode: 0o644 },
  old: d(0o755, { mtime: T + 20 }),
  "old/b": f("old b"),
  opq: d(0o755, { mtime: T + 20 }),
  "opq/z": f("z"),
  "will-be-dir": d(0o700),
  "will-be-dir/inside": f("now a dir"),
  "will-be-file": f("now a file", 0o640)
}

const toBuffer = (value: Uint8Array | string) => (typeof value === "string" ? Buffer.from(value) : Buffer.from(value))

let registry: TestRegistry
let work: string
let kernel: { kernel: string; initrd: string }

beforeAll(async () => {
  registry = await startRegistry()
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-exact-"))
  kernel = await findCloudKernel()
  const layers = [await buildLayer(layer1, "gzip"), await buildLayer(layer2, "zstd"), await buildLayer(layer3, "none")]
  await pushImage(registry, "edge", "1", {
    layers,
    config: {
      config: {
        Entrypoint: ["/usr/bin/edge"],
        Cmd: null,
        Env: ["PATH=/usr/bin:/bin", "EDGE=1"],
        WorkingDir: "/srv/edge",
        User: "edge"
      }
    }
  })
})

afterAll(async () => {
  await registry?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

describe("banger image pull: exact rootfs from a three-layer image", () => {
  it("produces an ext4 whose every entry matches the layers, and passes e2fsck", async () => {
    const state = path.join(work, "state")
    const result = await withBangerDaemon(state, () =>
      runBanger([
        "--state-dir",
        state,
        "image",
        "pull",
        `${registry.host}/edge:1`,
        "--kernel",
        kernel.kernel,
        "--initrd",
        kernel.initrd,
        "--json"
      ])
    )
    expect(errorLines(result.stderr), result.stderr).toEqual([])
    expect(result.code).toBe(0)
    const image = JSON.parse(result.stdout)
    expect(image).toMatchObject({
      name: "edge-1",
      ref: `${registry.host}/edge:1`,
      managed: true,
      platform: "linux/amd64"
    })
    expect(image.manifestDigest).toMatch(/^sha256:[0-9a-f]{64}$/)
    // The config's run settings are recorded for the VM's init; a null Cmd is an empty one.
    expect(image.runtime).toEqual({
      entrypoint: ["/usr/bin/edge"],
      cmd: [],
      env: ["PATH=/usr/bin:/bin", "EDGE=1"],
      workingDir: "/srv/edge",
      user: "edge"
    })
    expect(fs.readdirSync(path.dirname(image.rootfs)).sort()).toEqual(["initrd.img", "kernel", "rootfs.ext4"])
    expect(fs.readFileSync(image.kernel).equals(fs.readFileSync(kernel.kernel))).toBe(true)
    expect(leftovers(state)).toEqual(nothingLeft)

    const entries = await Effect.runPromise(inspectImage(image.rootfs).pipe(Effect.provide(NodeContext.layer)))
    const byPath = new Map(entries.filter((entry) => entry.path !== "lost+found").map((entry) => [entry.path, entry]))
    expect([...byPath.keys()].sort()).toEqual(Object.keys(expected).sort())

    const files = await Effect.runPromise(
      readFilesFromImage(
        image.rootfs,
        entries.filter((entry) => entry.type === "file")
      ).pipe(Effect.provide(NodeContext.layer))
    )
    const inodeGroups = new Map<string, number>()
    for (const [name, want] of Object.entries(expected)) {
      const got = byPath.get(name)!
      const label = `entry "${name}"`
      expect(got.type, label).toBe(want.type)
      expect(got.mode.toString(8), label).toBe(want.mode.toString(8))
      expect([got.uid, got.gid], label).toEqual([want.uid ?? 0, want.gid ?? 0])
      if (want.mtime !== undefined) expect(got.mtime, label).toBe(want.mtime)
      if (want.content !== undefined) expect(files.get(name)?.toString(), label).toBe(want.content)
      if (want.target !== undefined) expect(got.linkTarget, label).toBe(want.target)
      if (want.dev !== undefined) expect([got.devMajor, got.devMinor], label).toEqual(want.dev)
      const xattrs = Object.entries(want.xattrs ?? {})
        .map(([key, value]) => [key, toBuffer(value)] as const)
        .sort(([a], [b]) => (a < b ? -1 : 1))
      expect(
        got.xattrs.map(([key, value]) => [key, value.toString("hex")]),
        label
      ).toEqual(xattrs.map(([key, value]) => [key, value.toString("hex")]))
      if (want.inode !== undefined) {
        const seen = inodeGroups.get(want.inode)
        if (seen === undefined) inodeGroups.set(want.inode, got.inode)
        else expect(got.inode, `${label} shares an inode`).toBe(seen)
        expect(got.links, label).toBe(3)
      }
    }
    const fsck = await import("node:child_process").then(({ spawnSync }) =>
      spawnSync("e2fsck", ["-fn", image.rootfs], { encoding: "utf8" })
    )
    expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0)
  })
})
