/**
 * The kernel store and image management through the real CLI and daemon: register copies the
 * triple into the store, `--kernel-ref` pulls boot from it, and images keep their own copies.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expectOneLineError, runBanger, withBangerDaemon } from "../support/banger-cli.js"
import { buildLayer } from "../support/layers.js"
import { findCloudKernel } from "../support/qemu.js"
import { pushImage, startRegistry, type TestRegistry } from "../support/registry.js"
import { imageRows, leftovers, nothingLeft } from "../support/state-leftovers.js"

let registry: TestRegistry
let work: string
let boot: { kernel: string; initrd: string }
let modules: string
let catalog: string

beforeAll(async () => {
  registry = await startRegistry()
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-kernels-"))
  boot = await findCloudKernel()
  modules = path.join(work, "modules", "6.1.0-test")
  fs.mkdirSync(path.join(modules, "kernel", "fs"), { recursive: true })
  fs.writeFileSync(path.join(modules, "kernel", "fs", "ext4.ko"), "module bytes")
  fs.writeFileSync(path.join(modules, "modules.dep"), "kernel/fs/ext4.ko:\n")
  const layer = await buildLayer([{ type: "file", name: "etc-hostname", content: "tiny\n" }])
  await pushImage(registry, "tiny", "1", { layers: [layer] })
  // --kernel-ref looks names up in the catalog too: a known one, independent of the built-in.
  catalog = path.join(work, "catalog.json")
  fs.writeFileSync(
    catalog,
    JSON.stringify({
      kernels: [
        { name: "listed", ref: `${registry.host}/kernels/none:1`, arch: "x86_64", description: "-", default: true }
      ],
      images: [{ name: "tiny", ref: `${registry.host}/tiny:1`, kernel: "listed", description: "-", default: true }]
    })
  )
})

afterAll(async () => {
  await registry?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

const sameBytes = (a: string, b: string) => fs.readFileSync(a).equals(fs.readFileSync(b))

describe("kernel store and image management (CLI → daemon)", () => {
  it("registers, lists, shows, pulls with --kernel-ref, deletes", async () => {
    const state = path.join(work, "state")
    await withBangerDaemon(state, async () => {
      const banger = (...args: Array<string>) => runBanger(["--state-dir", state, "--catalog", catalog, ...args])

      const registered = await banger(
        "kernel",
        "register",
        "cloud",
        "--kernel",
        boot.kernel,
        "--initrd",
        boot.initrd,
        "--modules",
        modules,
        "--json"
      )
      expect(registered.code, registered.stderr).toBe(0)
      const kernel = JSON.parse(registered.stdout)
      expect(kernel.kernel).toBe(path.join(state, "kernels", "cloud", "kernel"))
      expect(sameBytes(kernel.kernel, boot.kernel)).toBe(true)
      expect(sameBytes(kernel.initrd, boot.initrd)).toBe(true)
      expect(fs.readFileSync(path.join(kernel.modules, "kernel", "fs", "ext4.ko"), "utf8")).toBe("module bytes")

      expectOneLineError(
        await banger("kernel", "register", "cloud", "--kernel", boot.kernel),
        /kernel "cloud" already exists/
      )
      expectOneLineError(
        await banger("kernel", "register", "../evil", "--kernel", boot.kernel),
        /invalid name "\.\.\/evil"/
      )
      expectOneLineError(
        await banger("kernel", "register", "other", "--kernel", path.join(work, "missing")),
        /kernel does not exist/
      )
      expect(
        JSON.parse((await banger("kernel", "list", "--json")).stdout).map((k: { name: string }) => k.name)
      ).toEqual(["cloud"])
      expect((await banger("kernel", "show", "cloud")).stdout).toContain(kernel.initrd)

      const pulled = await banger("image", "pull", `${registry.host}/tiny:1`, "--kernel-ref", "cloud", "--json")
      expect(pulled.code, pulled.stderr).toBe(0)
      const image = JSON.parse(pulled.stdout)
      const imageDir = path.dirname(image.rootfs)
      expect(image.kernel).toBe(path.join(imageDir, "kernel"))
      expect(sameBytes(image.kernel, boot.kernel)).toBe(true)
      expect(sameBytes(image.initrd, boot.initrd)).toBe(true)
      expect(fs.readFileSync(path.join(image.modules, "modules.dep"), "utf8")).toBe("kernel/fs/ext4.ko:\n")

      expectOneLineError(
        await banger("image", "pull", `${registry.host}/tiny:1`, "--name", "x", "--kernel-ref", "nope"),
        /kernel "nope" not found: neither in the local kernel store .* nor in the catalog/
      )
      expectOneLineError(
        await banger(
          "image",
          "pull",
          `${registry.host}/tiny:1`,
          "--name",
          "x",
          "--kernel-ref",
          "cloud",
          "--kernel",
          boot.kernel
        ),
        /either --kernel-ref or --kernel/
      )

      // The image owns its copies: deleting the kernel (forced, since the image was made with it)
      // leaves it bootable.
      expectOneLineError(await banger("kernel", "delete", "cloud"), /kernel "cloud" is used by image\(s\) tiny-1/)
      expect((await banger("kernel", "delete", "cloud", "--force")).code).toBe(0)
      expect(fs.existsSync(path.join(state, "kernels", "cloud"))).toBe(false)
      expectOneLineError(await banger("kernel", "show", "cloud"), /kernel "cloud" not found/)
      expect(sameBytes(image.kernel, boot.kernel)).toBe(true)

      const shown = await banger("image", "show", "tiny-1", "--json")
      expect(JSON.parse(shown.stdout)).toEqual(image)
      const listed = await banger("image", "list")
      expect(listed.stdout).toMatch(/^NAME\s+REF\s+PLATFORM\s+SIZE\s+CREATED\ntiny-1\s+/)

      expect((await banger("image", "delete", "tiny-1")).code).toBe(0)
      expect(fs.existsSync(imageDir)).toBe(false)
      expect(imageRows(state)).toEqual([])
      expectOneLineError(await banger("image", "show", "tiny-1"), /image "tiny-1" not found/)
      expectOneLineError(await banger("image", "delete", "tiny-1"), /image "tiny-1" not found/)
    })
    expect(leftovers(state)).toEqual(nothingLeft)
    expect(fs.readdirSync(path.join(state, "kernels"))).toEqual([])
  })
})
