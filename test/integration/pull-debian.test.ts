/**
 * The acceptance path on a real distribution: a debootstrapped Debian split into three
 * layers (with whiteouts), pushed to a real registry, pulled with ./bin/banger — as root and as an
 * unprivileged user — must equal a reference extraction entry for entry, pass e2fsck, and boot
 * under qemu with Debian's cloud kernel and initrd.
 */

import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { errorLines, runBanger, withBangerDaemon } from "../support/banger-cli.js"
import { debianRootfs } from "../support/debian-rootfs.js"
import { inspectImage, readFilesFromImage } from "../support/ext4-inspect.js"
import { bootChecks, bootToMarker, findCloudKernel } from "../support/qemu.js"
import { pushImage, startRegistry, type TestRegistry } from "../support/registry.js"
import { applyLayersWithTar, type SplitImage, splitDebianImage } from "../support/rootfs-layers.js"
import { leftovers, nothingLeft } from "../support/state-leftovers.js"
import { diffSnapshots, type NodeRecord, snapshotTree } from "../support/tree-snapshot.js"

const NOBODY = { uid: 65534, gid: 65534 }

let registry: TestRegistry
let work: string
let split: SplitImage
let kernel: Awaited<ReturnType<typeof findCloudKernel>>
let reference: Map<string, NodeRecord>

/** Linux's dev_t encoding, as lstat's `rdev` reports it. */
const makedev = (major: number, minor: number) =>
  (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12) | ((major & ~0xfff) * 2 ** 32)

/** Hardlink groups named by their first member in path-component order, on both sides alike. */
const componentOrder = (a: string, b: string) => {
  const pa = a.split("/")
  const pb = b.split("/")
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i]! < pb[i]! ? -1 : 1
  }
  return pa.length - pb.length
}

const normalizeLinkGroups = (records: Map<string, NodeRecord>) => {
  const groups = new Map<string, Array<string>>()
  for (const [name, record] of records) {
    if (record.linkGroup) groups.set(record.linkGroup, [...(groups.get(record.linkGroup) ?? []), name])
  }
  for (const members of groups.values()) {
    const first = [...members].sort(componentOrder)[0]!
    for (const member of members) records.set(member, { ...records.get(member)!, linkGroup: first })
  }
  return records
}

/** The image read back into snapshotTree's shape (contents hashed), lost+found aside. */
const snapshotImage = async (rootfs: string): Promise<Map<string, NodeRecord>> => {
  const entries = (await Effect.runPromise(inspectImage(rootfs).pipe(Effect.provide(NodeContext.layer)))).filter(
    (entry) => entry.path !== "" && entry.path !== "lost+found" && !entry.path.startsWith("lost+found/")
  )
  const files = await Effect.runPromise(
    readFilesFromImage(
      rootfs,
      entries.filter((entry) => entry.type === "file")
    ).pipe(Effect.provide(NodeContext.layer))
  )
  const linkCount = new Map<number, number>()
  for (const entry of entries) linkCount.set(entry.inode, (linkCount.get(entry.inode) ?? 0) + 1)
  const firstName = new Map<number, string>()
  const records = new Map<string, NodeRecord>()
  const typeName: Record<string, NodeRecord["type"]> = { directory: "dir" }
  for (const entry of [...entries].sort((a, b) => componentOrder(a.path, b.path))) {
    const common = { mode: entry.mode.toString(8), uid: entry.uid, gid: entry.gid, mtime: entry.mtime }
    const type = (typeName[entry.type] ?? entry.type) as NodeRecord["type"]
    if (entry.type === "file") {
      let linkGroup: string | undefined
      if ((linkCount.get(entry.inode) ?? 1) > 1) {
        linkGroup = firstName.get(entry.inode) ?? entry.path
        firstName.set(entry.inode, linkGroup)
      }
      const content = files.get(entry.path)!
      records.set(entry.path, {
        type,
        ...common,
        size: content.length,
        sha256: createHash("sha256").update(content).digest("hex"),
        ...(linkGroup ? { linkGroup } : {})
      })
    } else if (entry.type === "symlink") {
      records.set(entry.path, { type, ...common, target: entry.linkTarget! })
    } else if (entry.type === "char" || entry.type === "block") {
      records.set(entry.path, { type, ...common, rdev: makedev(entry.devMajor!, entry.devMinor!) })
    } else {
      records.set(entry.path, { type, ...common })
    }
  }
  return normalizeLinkGroups(records)
}

const pull = async (state: string, name: string, asUser?: { uid: number; gid: number }) => {
  const result = await withBangerDaemon(
    state,
    () =>
      runBanger(
        [
          "--state-dir",
          state,
          "image",
          "pull",
          `${registry.host}/debian-split:bookworm`,
          "--name",
          name,
          "--kernel",
          kernel.kernel,
          "--initrd",
          kernel.initrd,
          "--json"
        ],
        { asUser, timeoutMs: 900_000 }
      ),
    { asUser }
  )
  expect(errorLines(result.stderr), result.stderr).toEqual([])
  expect(result.code).toBe(0)
  return JSON.parse(result.stdout) as { rootfs: string; kernel: string; initrd: string; name: string }
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-debian-"))
  fs.chmodSync(work, 0o755)
  kernel = await findCloudKernel()
  const rootfs = await debianRootfs()
  const layersDir = path.join(work, "layers")
  fs.mkdirSync(layersDir)
  split = await splitDebianImage(rootfs, layersDir, { level: 1 })
  registry = await startRegistry()
  await pushImage(registry, "debian-split", "bookworm", { layers: split.layers })
  const extracted = path.join(work, "reference")
  await applyLayersWithTar(split.layers, extracted)
  reference = normalizeLinkGroups(await snapshotTree(extracted))
  fs.rmSync(extracted, { recursive: true, force: true })
}, 1_800_000)

afterAll(async () => {
  await registry?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

describe("banger image pull of a real Debian image", () => {
  let pulled: { rootfs: string; kernel: string; initrd: string }

  it("matches a reference extraction of the same layers exactly and passes e2fsck", async () => {
    const state = path.join(work, "state-root")
    pulled = await pull(state, "debian")
    expect(leftovers(state)).toEqual(nothingLeft)
    const fsck = spawnSync("e2fsck", ["-fn", pulled.rootfs], { encoding: "utf8" })
    expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0)
    const image = await snapshotImage(pulled.rootfs)
    expect(reference.size).toBeGreaterThan(5000)
    expect(diffSnapshots(reference, image)).toEqual([])
    for (const gone of split.whiteouts) expect(image.has(gone)).toBe(false)
  }, 900_000)

  it("boots under qemu (TCG) with Debian's cloud kernel and initrd to userspace", async () => {
    expect(pulled, "the pull test must have run").toBeDefined()
    const boot = await bootToMarker({
      kernel: pulled.kernel,
      initrd: pulled.initrd,
      rootfs: pulled.rootfs,
      timeoutMs: 240_000,
      snapshot: true
    })
    expect(boot.markerLine).toMatch(/kernel=\S+-cloud-amd64 uid=0/)
    const checks = bootChecks(boot.serial)
    expect(checks.get("os")).toBe("debian-12")
    expect(checks.get("motd")).toBe("absent")
    expect(checks.get("doc-dpkg")).toBe("absent")
    expect(checks.get("doc-bash")).toBe("present")
    console.log(`[pull-debian] boot to userspace took ${(boot.durationMs / 1000).toFixed(1)} s`)
  }, 300_000)

  it("as an unprivileged user produces the same exact ownership and modes", async () => {
    const state = path.join(work, "state-nobody")
    fs.mkdirSync(state)
    fs.chownSync(state, NOBODY.uid, NOBODY.gid)
    const asNobody = await pull(state, "debian", NOBODY)
    expect(fs.statSync(asNobody.rootfs).uid).toBe(NOBODY.uid)
    expect(leftovers(state)).toEqual(nothingLeft)
    const image = await snapshotImage(asNobody.rootfs)
    expect(diffSnapshots(reference, image)).toEqual([])
    const suid = [...image.entries()].filter(([, record]) => Number.parseInt(record.mode, 8) & 0o4000)
    expect(suid.length).toBeGreaterThan(0)
    for (const [, record] of suid) expect(record.uid).toBe(0)
  }, 900_000)
})
