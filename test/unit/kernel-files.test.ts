import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { bannerScanner, bzImageRelease, detectKernelFormat } from "../../src/domain/kernel-file.js"
import type { TreeEntry } from "../../src/domain/tree.js"
import { findInitrd, findKernelFile, findModules } from "../../src/pipelines/kernel/find-boot-files.js"
import { imagePaths } from "../../src/pipelines/kernel/image-paths.js"
import { inspectKernelFile } from "../../src/pipelines/kernel/inspect-kernel.js"
import { elfVmlinux } from "../support/kernel-files.js"
import { findCloudKernel } from "../support/qemu.js"

const entry = (p: string, type: TreeEntry["type"], extra: Partial<TreeEntry> = {}): TreeEntry => ({
  path: p,
  type,
  mode: 0o644,
  uid: 0,
  gid: 0,
  mtime: 0,
  size: 0,
  xattrs: [],
  ...extra
})
const dir = (p: string) => entry(p, "directory")
const file = (p: string) => entry(p, "file")
const link = (p: string, target: string) => entry(p, "symlink", { linkTarget: target })

describe("kernel file magic and version", () => {
  it("tells ELF from bzImage from anything else, by bytes", () => {
    expect(detectKernelFormat(elfVmlinux("6.1.0-test"))).toBe("elf")
    expect(detectKernelFormat(Buffer.from("root:x:0:0:root:/root:/bin/sh\n"))).toBeUndefined()
    const fakeBz = Buffer.alloc(0x400)
    fakeBz.writeUInt16LE(0xaa55, 0x1fe)
    fakeBz.write("HdrS", 0x202)
    expect(detectKernelFormat(fakeBz)).toBe("bzImage")
    fakeBz.write("HdrX", 0x202)
    expect(detectKernelFormat(fakeBz)).toBeUndefined()
  })

  it("finds the banner even split across chunks", () => {
    const bytes = elfVmlinux("6.1.0-split", 1000)
    for (const size of [7, 64, 1013, bytes.length]) {
      const scan = bannerScanner()
      let found: string | undefined
      for (let at = 0; at < bytes.length && found === undefined; at += size) found = scan(bytes.subarray(at, at + size))
      found ??= scan(new Uint8Array(0))
      expect(found, `chunk size ${size}`).toBe("6.1.0-split")
    }
  })

  it.effect("reads the host's bzImage: format and the release its setup header names", () =>
    Effect.gen(function* () {
      const host = yield* Effect.promise(() => findCloudKernel())
      const info = yield* inspectKernelFile(host.kernel)
      expect(info).toEqual({ format: "bzImage", pvh: false, release: host.version })
      expect(bzImageRelease(fs.readFileSync(host.kernel).subarray(0, 65536))).toBe(host.version)
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it.effect("a text file is NotAKernel", () =>
    Effect.gen(function* () {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "banger-kfile-"))
      const passwd = path.join(tmp, "passwd")
      fs.writeFileSync(passwd, "root:x:0:0:root:/root:/bin/sh\n")
      const error = yield* Effect.flip(inspectKernelFile(passwd, "/etc/passwd"))
      fs.rmSync(tmp, { recursive: true })
      expect(error._tag).toBe("NotAKernel")
      expect(error.message).toMatch(/^\/etc\/passwd is not a kernel image/)
    }).pipe(Effect.provide(NodeContext.layer))
  )
})

describe("boot files inside a flattened image", () => {
  const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runSync(Effect.either(effect))

  it("follows symlinks inside the image only, counts one file once, finds usrmerged modules", () => {
    const paths = imagePaths([
      dir(""),
      dir("boot"),
      file("boot/vmlinux-6.1.0-test"),
      link("boot/vmlinux", "vmlinux-6.1.0-test"),
      link("vmlinux", "/boot/../boot/./vmlinux"),
      file("boot/initrd.img-6.1.0-test"),
      link("boot/initrd.img", "initrd.img-6.1.0-test"),
      link("lib", "usr/lib"),
      dir("usr"),
      dir("usr/lib"),
      dir("usr/lib/modules"),
      dir("usr/lib/modules/6.1.0-test"),
      file("usr/lib/modules/6.1.0-test/modules.dep")
    ])
    const kernel = run(findKernelFile(paths, "ref"))
    expect(kernel._tag === "Right" && kernel.right.entry.path).toBe("boot/vmlinux-6.1.0-test")
    const initrd = run(findInitrd(paths, "ref"))
    expect(initrd._tag === "Right" && initrd.right?.entry.path).toBe("boot/initrd.img-6.1.0-test")
    const modules = run(findModules(paths, "ref", undefined))
    expect(modules._tag === "Right" && modules.right).toEqual({
      version: "6.1.0-test",
      path: "usr/lib/modules/6.1.0-test"
    })
  })

  it("a link to /etc/passwd means the image's own file, and `..` never leaves the image", () => {
    const escaping = imagePaths([dir(""), dir("boot"), link("boot/vmlinuz-evil", "../../../../../etc/passwd")])
    const none = run(findKernelFile(escaping, "ref"))
    expect(none._tag).toBe("Left")
    expect(none._tag === "Left" && none.left.message).toMatch(
      /no kernel found .*found only \/boot\/vmlinuz-evil \(\/etc does not exist in the image\)/
    )
    const own = imagePaths([
      dir(""),
      dir("boot"),
      dir("etc"),
      file("etc/passwd"),
      link("boot/vmlinuz-x", "/etc/passwd")
    ])
    const found = run(findKernelFile(own, "ref"))
    expect(found._tag === "Right" && found.right.entry.path).toBe("etc/passwd")
  })

  it("several kernels, or several initrds, are typed errors listing them", () => {
    const two = imagePaths([dir(""), dir("boot"), file("boot/vmlinux-a"), file("boot/vmlinuz-b")])
    const kernels = run(findKernelFile(two, "ref"))
    expect(kernels._tag === "Left" && kernels.left._tag).toBe("KernelImageInvalid")
    expect(kernels._tag === "Left" && kernels.left.reason).toBe(
      "several kernels found: /boot/vmlinux-a, /boot/vmlinuz-b"
    )
    const initrds = imagePaths([dir(""), dir("boot"), file("boot/initrd.img-a"), file("boot/initrd-b")])
    expect(run(findInitrd(initrds, "ref"))._tag).toBe("Left")
    const looping = imagePaths([dir(""), link("vmlinux", "vmlinux")])
    const loop = run(findKernelFile(looping, "ref"))
    expect(loop._tag === "Left" && loop.left.reason).toMatch(/too many levels of symlinks/)
  })

  it("with several modules trees, the kernel's release picks one; otherwise it is ambiguous", () => {
    const paths = imagePaths([
      dir(""),
      dir("lib"),
      dir("lib/modules"),
      dir("lib/modules/6.1.0-a"),
      dir("lib/modules/6.1.0-b")
    ])
    const picked = run(findModules(paths, "ref", "6.1.0-b"))
    expect(picked._tag === "Right" && picked.right?.version).toBe("6.1.0-b")
    expect(run(findModules(paths, "ref", "6.2"))._tag).toBe("Left")
  })
})
