/**
 * `banger image pull` into a state dir on a small tmpfs the test mounts (and unmounts): a pull
 * that cannot fit fails early, before any download, saying how much it needs and how much is free;
 * a disk that fills up later says so in words. Nothing is left behind either way.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type BadRegistry, startBadRegistry } from "../support/bad-registry.js"
import { expectOneLineError, runBanger, withBangerDaemon } from "../support/banger-cli.js"
import { buildLayer } from "../support/layers.js"
import { findCloudKernel } from "../support/qemu.js"
import { pushImage, startRegistry, type TestRegistry } from "../support/registry.js"
import { imageRows, leftovers, nothingLeft } from "../support/state-leftovers.js"

let bad: BadRegistry
let registry: TestRegistry
let work: string
let kernel: string
const mounts: Array<string> = []

const tmpfs = (size: string) => {
  const dir = fs.mkdtempSync(path.join(work, "tmpfs-"))
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { encoding: "utf8" })
  if (mounted.status !== 0) throw new Error(`mount tmpfs failed: ${mounted.stderr}`)
  mounts.push(dir)
  return path.join(dir, "state")
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-disk-full-"))
  kernel = (await findCloudKernel()).kernel
  bad = await startBadRegistry({ layerBytes: 6 << 20, only: ["ok"] })
  registry = await startRegistry()
  // 24 MiB of text that gzips to a few KiB: the download fits where the unpacked tree cannot.
  const text = Buffer.alloc(24 << 20, "every line the same, over and over\n")
  const layer = await buildLayer([
    { type: "directory", name: "data" },
    { type: "file", name: "data/small", content: Buffer.from("fits\n") },
    { type: "file", name: "data/repetitive.log", content: text }
  ])
  await pushImage(registry, "compressible", "1", { layers: [layer] })
}, 60_000)

afterAll(async () => {
  await bad?.stop()
  await registry?.stop()
  for (const dir of mounts) spawnSync("umount", [dir])
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

const pull = (state: string) =>
  runBanger(["--state-dir", state, "image", "pull", `${bad.host}/ok:1`, "--kernel", kernel])

describe("image pull on a full disk", () => {
  it("refuses before downloading when the layers alone do not fit, with both figures", async () => {
    const state = tmpfs("4m")
    await withBangerDaemon(state, async () => {
      const result = await pull(state)
      expectOneLineError(
        result,
        /^banger: \S+\/state: not enough free space: 1 layer download needs? 6\.0 MiB \(compressed sizes from the manifest; the unpacked image needs more\), the filesystem has [0-3]\.\d MiB free$/
      )
      const layer = bad.images.get("ok")!.layerDigest
      expect(bad.requests.filter((request) => request.path.endsWith(layer))).toEqual([])
      expect(imageRows(state)).toEqual([])
      expect(leftovers(state)).toEqual(nothingLeft)
    })
  })

  it("a disk that fills up after the download says so in words, and nothing is left", async () => {
    const state = tmpfs("10m")
    await withBangerDaemon(state, async () => {
      const result = await pull(state)
      expectOneLineError(
        result,
        /the filesystem is full: blob sha256:[0-9a-f]{64} stopped at [\d.]+ MiB of 6.0 MiB \(.* free\)|the filesystem is full: the image's file data stopped at|not enough free space: the image's file data needs/
      )
      expect(result.stderr).not.toMatch(/ENOSPC: ENOSPC/)
      expect(imageRows(state)).toEqual([])
      expect(leftovers(state)).toEqual(nothingLeft)
    })
  })

  it("a tree that unpacks beyond the free space fails as soon as a file's size says so, with the figures", async () => {
    const state = tmpfs("12m")
    await withBangerDaemon(state, async () => {
      const result = await runBanger([
        "--state-dir",
        state,
        "image",
        "pull",
        `${registry.host}/compressible:1`,
        "--kernel",
        kernel
      ])
      expectOneLineError(
        result,
        /^banger: \S+\/rootfs\.ext4: not enough free space: the image's file data needs 24\.0 MiB so far, 24\.0 MiB of it not yet written, and the filesystem has [\d.]+ MiB free$/
      )
      expect(imageRows(state)).toEqual([])
      expect(leftovers(state)).toEqual(nothingLeft)
    })
  })
})
