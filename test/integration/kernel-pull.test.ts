/**
 * Kernels published as OCI images, through the real CLI and daemon against the real registry:
 * pulled by reference and by catalog name, format and version read from the files, bad kernel
 * images refused with nothing left behind, `--kernel-ref` and `image pull CATALOG_NAME` pulling
 * the catalog kernel inside the image's operation (and rolling it back on cancel), and
 * `kernel delete` refusing kernels that images use.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  expectOneLineError,
  runBanger,
  startBanger,
  startBangerDaemon,
  withBangerDaemon
} from "../support/banger-cli.js"
import { elfVmlinux } from "../support/kernel-files.js"
import { buildLayer } from "../support/layers.js"
import { findCloudKernel } from "../support/qemu.js"
import { pushImage, startRegistry, type TestRegistry } from "../support/registry.js"
import { startRegistryProxy } from "../support/registry-proxy.js"
import { imageRows, leftovers, nothingLeft } from "../support/state-leftovers.js"

const RELEASE = "6.1.0-test"

let registry: TestRegistry
let work: string
let host: { kernel: string; initrd: string; version: string }
const digests: Record<string, string> = {}

const writeCatalog = (file: string, kernelRef: string, imageRef: string) => {
  fs.writeFileSync(
    file,
    JSON.stringify({
      kernels: [{ name: "test-kernel", ref: kernelRef, arch: "x86_64", description: "test ELF kernel", default: true }],
      images: [{ name: "tiny-dev", ref: imageRef, kernel: "test-kernel", description: "tiny image", default: true }]
    })
  )
  return file
}

beforeAll(async () => {
  registry = await startRegistry()
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-kernel-pull-"))
  host = await findCloudKernel()
  const push = async (repository: string, entries: Parameters<typeof buildLayer>[0]) => {
    const pushed = await pushImage(registry, repository, "1", { layers: [await buildLayer(entries)] })
    digests[repository] = pushed.digest
  }
  const modules = `usr/lib/modules/${RELEASE}`
  await push("kernels/elf", [
    { type: "directory", name: "boot/" },
    { type: "file", name: `boot/vmlinux-${RELEASE}`, content: elfVmlinux(RELEASE) },
    { type: "file", name: `boot/initrd.img-${RELEASE}`, content: "initrd bytes" },
    { type: "symlink", name: "vmlinux", target: `boot/vmlinux-${RELEASE}` },
    // usrmerge: /lib/modules is reached through the image's own /lib → usr/lib link.
    { type: "directory", name: "usr/" },
    { type: "directory", name: "usr/lib/" },
    { type: "symlink", name: "lib", target: "usr/lib" },
    { type: "directory", name: "usr/lib/modules/" },
    { type: "directory", name: `${modules}/` },
    { type: "directory", name: `${modules}/kernel/` },
    { type: "directory", name: `${modules}/kernel/fs/` },
    { type: "file", name: `${modules}/kernel/fs/ext4.ko`, content: "module bytes" },
    { type: "file", name: `${modules}/modules.dep`, content: "kernel/fs/ext4.ko:\n" },
    { type: "symlink", name: `${modules}/build`, target: "/etc" }
  ])
  await push("kernels/bz", [
    { type: "directory", name: "boot/" },
    { type: "file", name: `boot/vmlinuz-${host.version}`, content: fs.readFileSync(host.kernel) }
  ])
  await push("kernels/none", [{ type: "file", name: "etc/hostname", content: "none\n" }])
  await push("kernels/two", [
    { type: "directory", name: "boot/" },
    { type: "file", name: "boot/vmlinux-a", content: elfVmlinux("6.1.0-a") },
    { type: "file", name: "boot/vmlinuz-b", content: elfVmlinux("6.1.0-b") }
  ])
  await push("kernels/escape", [
    { type: "directory", name: "boot/" },
    { type: "symlink", name: "boot/vmlinuz-evil", target: "../../../../../etc/passwd" }
  ])
  await push("kernels/passwd", [
    { type: "directory", name: "boot/" },
    { type: "directory", name: "etc/" },
    { type: "file", name: "etc/passwd", content: "root:x:0:0:root:/root:/bin/sh\n" },
    { type: "symlink", name: "boot/vmlinuz-evil", target: "/etc/passwd" }
  ])
  await push("tiny", [{ type: "file", name: "etc/hostname", content: "tiny\n" }])
}, 120_000)

afterAll(async () => {
  await registry?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

const kernelDirs = (state: string) => {
  const dir = path.join(state, "kernels")
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []
}

describe("banger kernel pull", () => {
  it("pulls by reference and by catalog name, records format and version, refuses bad kernel images", async () => {
    const state = path.join(work, "state-pull")
    const catalog = writeCatalog(
      path.join(work, "catalog-pull.json"),
      `${registry.host}/kernels/elf:1`,
      `${registry.host}/tiny:1`
    )
    await withBangerDaemon(state, async () => {
      const banger = (...args: Array<string>) => runBanger(["--state-dir", state, "--catalog", catalog, ...args])

      const byRef = await banger("kernel", "pull", `${registry.host}/kernels/elf:1`, "--json")
      expect(byRef.code, byRef.stderr).toBe(0)
      const elf = JSON.parse(byRef.stdout)
      const elfDir = path.join(state, "kernels", "elf-1")
      expect(elf).toMatchObject({
        name: "elf-1",
        ref: `${registry.host}/kernels/elf:1`,
        manifestDigest: digests["kernels/elf"],
        version: RELEASE,
        format: "elf",
        kernel: path.join(elfDir, "kernel"),
        initrd: path.join(elfDir, "initrd.img"),
        modules: path.join(elfDir, "modules")
      })
      expect(fs.readFileSync(elf.kernel).equals(elfVmlinux(RELEASE))).toBe(true)
      expect(fs.readFileSync(elf.initrd, "utf8")).toBe("initrd bytes")
      expect(fs.readFileSync(path.join(elf.modules, "kernel/fs/ext4.ko"), "utf8")).toBe("module bytes")
      // The modules tree's own links are not carried onto the host.
      expect(fs.existsSync(path.join(elf.modules, "build"))).toBe(false)

      const byName = await banger("kernel", "pull", "test-kernel", "--json")
      expect(byName.code, byName.stderr).toBe(0)
      expect(JSON.parse(byName.stdout)).toMatchObject({
        name: "test-kernel",
        manifestDigest: digests["kernels/elf"],
        format: "elf",
        version: RELEASE
      })

      const bz = await banger("kernel", "pull", `${registry.host}/kernels/bz:1`, "--name", "cloud", "--json")
      expect(bz.code, bz.stderr).toBe(0)
      const cloud = JSON.parse(bz.stdout)
      expect(cloud).toMatchObject({
        name: "cloud",
        format: "bzImage",
        version: host.version,
        initrd: null,
        modules: null
      })
      expect(fs.readFileSync(cloud.kernel).equals(fs.readFileSync(host.kernel))).toBe(true)

      const shown = await banger("kernel", "show", "test-kernel")
      expect(shown.stdout).toMatch(new RegExp(`ref:\\s+${registry.host}/kernels/elf:1`))
      expect(shown.stdout).toMatch(/version:\s+6\.1\.0-test/)
      expect(shown.stdout).toMatch(/format:\s+elf/)
      expect(shown.stdout).toContain(digests["kernels/elf"])
      const listed = await banger("kernel", "list")
      expect(listed.stdout).toMatch(/^NAME\s+FORMAT\s+VERSION\s+INITRD\s+MODULES\s+CREATED\n/)
      expect(listed.stdout).toMatch(
        new RegExp(`\\ncloud\\s+bzImage\\s+${host.version.replace(/\./g, "\\.")}\\s+no\\s+no`)
      )
      expect(listed.stdout).toMatch(/\nelf-1\s+elf\s+6\.1\.0-test\s+yes\s+yes/)

      expectOneLineError(
        await banger("kernel", "pull", `${registry.host}/kernels/none:1`),
        /is not a usable kernel image: no kernel found \(looked for \/boot\/vmlinux, /
      )
      expectOneLineError(
        await banger("kernel", "pull", `${registry.host}/kernels/two:1`),
        /several kernels found: \/boot\/vmlinux-a, \/boot\/vmlinuz-b$/
      )
      // The link names /etc/passwd: inside the image there is none, and the host's is never read.
      expectOneLineError(
        await banger("kernel", "pull", `${registry.host}/kernels/escape:1`),
        /no kernel found .*found only \/boot\/vmlinuz-evil \(\/etc does not exist in the image\)$/
      )
      expectOneLineError(
        await banger("kernel", "pull", `${registry.host}/kernels/passwd:1`),
        /\/boot\/vmlinuz-evil is not a kernel image: neither an ELF/
      )
      expectOneLineError(
        await banger("kernel", "pull", `${registry.host}/kernels/elf:1`),
        /kernel "elf-1" already exists/
      )
      expectOneLineError(
        await banger("kernel", "pull", `${registry.host}/kernels/missing:1`),
        /^banger: registry error/
      )

      const text = path.join(work, "not-a-kernel")
      fs.writeFileSync(text, "just text\n")
      expectOneLineError(await banger("kernel", "register", "text", "--kernel", text), /is not a kernel image/)
      const registered = await banger("kernel", "register", "host", "--kernel", host.kernel, "--json")
      expect(registered.code, registered.stderr).toBe(0)
      expect(JSON.parse(registered.stdout)).toMatchObject({ format: "bzImage", version: host.version, ref: null })
    })
    expect(kernelDirs(state)).toEqual(["cloud", "elf-1", "host", "test-kernel"])
    expect(leftovers(state)).toEqual(nothingLeft)
  }, 240_000)

  it("--kernel-ref and image pull CATALOG_NAME pull the catalog kernel in the same operation; delete refuses used kernels", async () => {
    const state = path.join(work, "state-catalog")
    const catalog = writeCatalog(
      path.join(work, "catalog.json"),
      `${registry.host}/kernels/elf:1`,
      `${registry.host}/tiny:1`
    )
    await withBangerDaemon(state, async () => {
      const banger = (...args: Array<string>) => runBanger(["--state-dir", state, "--catalog", catalog, ...args])

      expectOneLineError(
        await banger("image", "pull", `${registry.host}/tiny:1`, "--kernel-ref", "nowhere"),
        /kernel "nowhere" not found: neither in the local kernel store .* nor in the catalog/
      )
      const viaRef = await banger(
        "image",
        "pull",
        `${registry.host}/tiny:1`,
        "--name",
        "via-ref",
        "--kernel-ref",
        "test-kernel",
        "--json"
      )
      expect(viaRef.code, viaRef.stderr).toBe(0)
      expect(JSON.parse(viaRef.stdout)).toMatchObject({ name: "via-ref", kernelName: "test-kernel" })
      expect(viaRef.stderr).toMatch(/^banger: kernel test-kernel\n(.*\n)*banger: image via-ref\n/m)
      const kernel = JSON.parse((await banger("kernel", "show", "test-kernel", "--json")).stdout)
      expect(kernel).toMatchObject({ format: "elf", version: RELEASE, manifestDigest: digests["kernels/elf"] })
      const ops = JSON.parse((await banger("op", "list", "--json")).stdout)
      expect(ops.map((op: { kind: string }) => op.kind)).toEqual(["image.pull"])

      expectOneLineError(
        await banger("kernel", "delete", "test-kernel"),
        /kernel "test-kernel" is used by image\(s\) via-ref: .*--force/
      )
      const forced = await banger("kernel", "delete", "test-kernel", "--force")
      expect(forced.code, forced.stderr).toBe(0)
      expect(kernelDirs(state)).toEqual([])

      // The catalog name wins over a one-word reference, and brings its kernel along.
      const pulled = await banger("image", "pull", "tiny-dev", "--json")
      expect(pulled.code, pulled.stderr).toBe(0)
      const image = JSON.parse(pulled.stdout)
      expect(image).toMatchObject({ name: "tiny-dev", ref: `${registry.host}/tiny:1`, kernelName: "test-kernel" })
      expect(pulled.stderr).toMatch(/^banger: kernel test-kernel\n(.*\n)*banger: image tiny-dev\n/m)
      expect(fs.readFileSync(image.kernel).equals(elfVmlinux(RELEASE))).toBe(true)
      expect(kernelDirs(state)).toEqual(["test-kernel"])
      // A local kernel is used as is: no second pull.
      const again = await banger("image", "pull", "tiny-dev", "--name", "tiny-2", "--json")
      expect(again.code, again.stderr).toBe(0)
      expect(again.stderr).not.toMatch(/^kernel /m)
      expect(imageRows(state).map((row) => row.name)).toEqual(["tiny-2", "tiny-dev", "via-ref"])
    })
    expect(leftovers(state)).toEqual(nothingLeft)
  }, 240_000)

  it("a cancel while image pull CATALOG_NAME fetches the image rolls back the kernel it pulled too", async () => {
    const state = path.join(work, "state-cancel")
    const proxy = await startRegistryProxy(registry, { fault: "stall" })
    try {
      // The kernel comes straight from the registry; the image through a proxy that stalls.
      const catalog = writeCatalog(
        path.join(work, "catalog-cancel.json"),
        `${registry.host}/kernels/elf:1`,
        `${proxy.host}/tiny:1`
      )
      await withBangerDaemon(state, async () => {
        const running = startBanger(["--state-dir", state, "--catalog", catalog, "image", "pull", "tiny-dev"])
        const deadline = Date.now() + 60_000
        while (!(kernelDirs(state).includes("test-kernel") && leftovers(state).staging.length > 0)) {
          if (Date.now() > deadline)
            throw new Error(`the pull never reached the image phase:\n${running.output().stderr}`)
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
        running.child.kill("SIGINT")
        const result = await running.result
        expect(result.code).toBe(130)
        expect(result.stderr).toMatch(/^banger: kernel test-kernel$/m)
        expect(result.stderr).toMatch(/^banger: image tiny-dev$/m)
        const kernels = await runBanger(["--state-dir", state, "kernel", "list", "--json"])
        expect(JSON.parse(kernels.stdout)).toEqual([])
        const ops = JSON.parse((await runBanger(["--state-dir", state, "op", "list", "--json"])).stdout)
        expect(ops.map((op: { state: string }) => op.state)).toEqual(["cancelled"])
      })
    } finally {
      await proxy.stop()
    }
    expect(kernelDirs(state)).toEqual([])
    expect(imageRows(state)).toEqual([])
    expect(leftovers(state)).toEqual(nothingLeft)
  }, 240_000)

  it("a daemon killed mid kernel pull: the next one sweeps the kernel staging dir", async () => {
    const state = path.join(work, "state-crash")
    const proxy = await startRegistryProxy(registry, { fault: "stall" })
    try {
      const daemon = await startBangerDaemon(state)
      const detached = await runBanger([
        "--state-dir",
        state,
        "kernel",
        "pull",
        `${proxy.host}/kernels/bz:1`,
        "--detach"
      ])
      expect(detached.code, detached.stderr).toBe(0)
      const deadline = Date.now() + 60_000
      while (!kernelDirs(state).some((name) => name.startsWith(".staging-"))) {
        if (Date.now() > deadline) throw new Error("the kernel pull never staged")
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      await daemon.kill()
    } finally {
      await proxy.stop()
    }
    expect(kernelDirs(state).filter((name) => name.startsWith(".staging-"))).toHaveLength(1)
    await withBangerDaemon(state, async () => {
      const ops = JSON.parse((await runBanger(["--state-dir", state, "op", "list", "--json"])).stdout)
      expect(ops.map((op: { kind: string; state: string }) => `${op.kind} ${op.state}`)).toEqual(["kernel.pull failed"])
    })
    expect(kernelDirs(state)).toEqual([])
    expect(leftovers(state)).toEqual(nothingLeft)
  }, 240_000)
})
