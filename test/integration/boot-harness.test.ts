/**
 * Proves the boot harness end to end on a real distribution: debootstrap fixture -> ext4 image ->
 * qemu (TCG) -> marker from a userspace init. Also proves the harness fails loudly, and that a
 * three-layer image split from the fixture reproduces it and boots.
 */

import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { debianRootfs, debianRootfsInfo, goldenPackages } from "../support/debian-rootfs.js"
import { copyTree, installTestInit, makeExt4Image } from "../support/ext4-image.js"
import { BootError, bootChecks, bootToMarker, findCloudKernel, testInitScript } from "../support/qemu.js"
import { applyLayersWithTar, SPLIT_WHITEOUTS, splitDebianImage } from "../support/rootfs-layers.js"
import { diffSnapshots, snapshotTree } from "../support/tree-snapshot.js"

const BOOT_TIMEOUT_MS = 180_000

let work: string
let rootfs: string
let kernel: Awaited<ReturnType<typeof findCloudKernel>>

/** The installed version of a package, read on the host from the tree's dpkg database. */
const dpkgVersion = async (root: string, pkg: string): Promise<string> => {
  const status = await fs.readFile(path.join(root, "var/lib/dpkg/status"), "utf8")
  const stanza = status.split("\n\n").find((s) => s.startsWith(`Package: ${pkg}\n`))
  const version = stanza && /^Version: (.*)$/m.exec(stanza)?.[1]
  if (!version) throw new Error(`${pkg} not in ${root}'s dpkg status`)
  return version
}

const sha256Stream = async (stream: NodeJS.ReadableStream): Promise<string> => {
  const hash = createHash("sha256")
  for await (const chunk of stream) hash.update(chunk as Buffer)
  return `sha256:${hash.digest("hex")}`
}

/** Any live process whose command line mentions `needle` (to check qemu was really stopped). */
const processesMentioning = async (needle: string): Promise<Array<number>> => {
  const pids: Array<number> = []
  for (const entry of await fs.readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    const cmdline = await fs.readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")
    if (cmdline.includes(needle)) pids.push(Number(entry))
  }
  return pids
}

beforeAll(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), "banger-boot-"))
  kernel = await findCloudKernel()
  const started = Date.now()
  rootfs = await debianRootfs({
    onBuilt: (info) => console.log(`[boot-harness] debootstrap (cold) took ${(info.durationMs / 1000).toFixed(1)} s`)
  })
  const info = await debianRootfsInfo()
  console.log(
    `[boot-harness] fixture ready in ${((Date.now() - started) / 1000).toFixed(1)} s ` +
      `(built ${info?.builtAt} in ${((info?.durationMs ?? 0) / 1000).toFixed(1)} s)`
  )
}, 1_200_000)

afterAll(async () => {
  if (work) await fs.rm(work, { recursive: true, force: true })
})

describe("qemu boot harness", () => {
  let image: string

  it("boots the debootstrap fixture to userspace under TCG", async () => {
    const tree = path.join(work, "tree")
    await copyTree(rootfs, tree)
    await installTestInit(
      tree,
      testInitScript({
        checks: [
          // Only a running userspace with the tree's dpkg database can answer these.
          `echo "BANGER-CHECK base-files=$(dpkg-query -W -f='\${Version}' base-files)"`,
          `echo "BANGER-CHECK su-mode=$(stat -c %a /usr/bin/su)"`,
          `echo "BANGER-CHECK shadow-owner=$(stat -c %U:%G /etc/shadow)"`,
          // The golden image's packages (images/golden/packages.txt) are installed and run here.
          `echo "BANGER-CHECK golden=$(dpkg-query -W -f='\${db:Status-Abbrev}\\n' ${goldenPackages().join(" ")} | grep -c '^ii')"`,
          `echo "BANGER-CHECK init=$(readlink -f /sbin/init)"`,
          `echo "BANGER-CHECK tools=$(tmux -V | cut -d' ' -f1),$(git --version | cut -d' ' -f1),$(curl --version | head -n1 | cut -d' ' -f1),$(sudo -V | head -n1 | cut -d' ' -f1)"`
        ]
      })
    )
    image = path.join(work, "fixture.ext4")
    const mkfsStarted = Date.now()
    const sizeMb = await makeExt4Image({ source: tree, image })
    const used = (await fs.stat(image)).blocks * 512
    console.log(
      `[boot-harness] ext4 image: ${sizeMb} MiB apparent, ${(used / 2 ** 20).toFixed(0)} MiB allocated, ` +
        `mkfs ${((Date.now() - mkfsStarted) / 1000).toFixed(1)} s`
    )

    const result = await bootToMarker({
      kernel: kernel.kernel,
      initrd: kernel.initrd,
      rootfs: image,
      timeoutMs: BOOT_TIMEOUT_MS,
      serialLog: path.join(work, "fixture-serial.log")
    })
    console.log(`[boot-harness] fixture boot to marker: ${(result.durationMs / 1000).toFixed(1)} s`)

    expect(result.markerLine).toBe(`BANGER-BOOT-OK kernel=${kernel.version} uid=0`)
    const checks = bootChecks(result.serial)
    expect(checks.get("base-files")).toBe(await dpkgVersion(rootfs, "base-files"))
    expect(checks.get("os")).toBe("debian-12")
    expect(checks.get("root")).toBe("/dev/vda:ext4:rw")
    expect(checks.get("su-mode")).toBe("4755")
    expect(checks.get("shadow-owner")).toBe("root:shadow")
    expect(checks.get("golden")).toBe(String(goldenPackages().length))
    expect(checks.get("init")).toBe("/usr/lib/systemd/systemd")
    expect(checks.get("tools")).toBe("tmux,git,curl,Sudo")
  })

  it("rejects promptly with the kernel panic when init exits", async () => {
    expect(image).toBeDefined()
    const started = Date.now()
    const error = await bootToMarker({
      kernel: kernel.kernel,
      initrd: kernel.initrd,
      rootfs: image,
      init: "/bin/true",
      snapshot: true,
      timeoutMs: BOOT_TIMEOUT_MS
    }).then(
      () => undefined,
      (e: unknown) => e
    )
    expect(error).toBeInstanceOf(BootError)
    expect((error as BootError).serial).toMatch(/Kernel panic - not syncing: Attempted to kill init/)
    expect((error as Error).message).toMatch(/qemu exited/)
    // panic=-1 with -no-reboot ends qemu at the panic, long before the timeout.
    expect(Date.now() - started).toBeLessThan(BOOT_TIMEOUT_MS / 2)
  })

  it("times out, stops qemu and reports the serial tail when the marker never comes", async () => {
    expect(image).toBeDefined()
    const started = Date.now()
    const error = await bootToMarker({
      kernel: kernel.kernel,
      initrd: kernel.initrd,
      rootfs: image,
      marker: "NEVER-PRINTED",
      snapshot: true,
      timeoutMs: 3000
    }).then(
      () => undefined,
      (e: unknown) => e
    )
    expect(error).toBeInstanceOf(BootError)
    expect((error as Error).message).toMatch(/no "NEVER-PRINTED" within 3000 ms/)
    expect((error as BootError).serial).toMatch(/SeaBIOS|Linux version/)
    expect(Date.now() - started).toBeLessThan(15_000)
    expect(await processesMentioning(image)).toEqual([])
  })
})

describe("three-layer image split from the fixture", () => {
  it("has correct digests, reproduces the tree through a reference applier, and boots", async () => {
    const layerDir = path.join(work, "layers")
    await fs.mkdir(layerDir)
    const splitStarted = Date.now()
    const split = await splitDebianImage(rootfs, layerDir)
    console.log(
      `[boot-harness] split into ${split.layers.map((l) => `${l.name} ${(l.size / 2 ** 20).toFixed(1)} MiB`).join(", ")} ` +
        `in ${((Date.now() - splitStarted) / 1000).toFixed(1)} s`
    )
    expect(split.layers.map((l) => l.name)).toEqual(["base", "docs", "top"])
    for (const layer of split.layers) {
      expect((await fs.stat(layer.path)).size).toBe(layer.size)
      expect(await sha256Stream(createReadStream(layer.path))).toBe(layer.digest)
      expect(await sha256Stream(createReadStream(layer.path).pipe(zlib.createGunzip()))).toBe(layer.diffId)
      expect(layer.mediaType).toBe("application/vnd.oci.image.layer.v1.tar+gzip")
    }

    const applied = path.join(work, "applied")
    await applyLayersWithTar(split.layers, applied)
    const removed = (p: string) => SPLIT_WHITEOUTS.some((w) => p === w || p.startsWith(`${w}/`))
    const expected = await snapshotTree(rootfs, { exclude: removed })
    const actual = await snapshotTree(applied, { exclude: (p) => p === split.initPath })
    expect(diffSnapshots(expected, actual)).toEqual([])
    expect(expected.size).toBeGreaterThan(5000)
    // The whiteouts really removed something that the lower layers carried.
    for (const target of SPLIT_WHITEOUTS) {
      await expect(fs.lstat(path.join(rootfs, target))).resolves.toBeDefined()
      await expect(fs.lstat(path.join(applied, target))).rejects.toThrow(/ENOENT/)
    }
    const init = await fs.stat(path.join(applied, split.initPath))
    expect([init.mode & 0o7777, init.uid, init.gid]).toEqual([0o755, 0, 0])

    const image = path.join(work, "layered.ext4")
    await makeExt4Image({ source: applied, image })
    const result = await bootToMarker({
      kernel: kernel.kernel,
      initrd: kernel.initrd,
      rootfs: image,
      timeoutMs: BOOT_TIMEOUT_MS,
      serialLog: path.join(work, "layered-serial.log")
    })
    console.log(`[boot-harness] layered image boot to marker: ${(result.durationMs / 1000).toFixed(1)} s`)
    expect(result.markerLine).toBe(`BANGER-BOOT-OK kernel=${kernel.version} uid=0`)
    const checks = bootChecks(result.serial)
    expect(Object.fromEntries(["motd", "doc-dpkg", "doc-bash"].map((k) => [k, checks.get(k)]))).toEqual({
      motd: "absent",
      "doc-dpkg": "absent",
      "doc-bash": "present"
    })
  })
})
