/**
 * Test-side ext4 images: copy a tree, drop the test init into the copy, `mkfs.ext4 -d` it. Runs as
 * root, so the image keeps the tree's real ownership. This is the reference path the boot harness is
 * proven with; banger's own image pipeline is what the integration tests then compare against.
 */

import * as fs from "node:fs/promises"
import * as path from "node:path"
import { run } from "./debian-rootfs.js"
import { TEST_INIT_PATH, testInitScript } from "./qemu.js"

/** `cp -a` keeps owners, modes, hardlinks, device nodes and xattrs; reflinks where the fs can. */
export const copyTree = async (source: string, destination: string): Promise<void> => {
  await fs.mkdir(path.dirname(destination), { recursive: true })
  await run("cp", ["-a", "--reflink=auto", "--", `${source}/.`, destination])
}

/**
 * Resolves `inside` (an absolute path as seen from within the rootfs) to a host path under `root`,
 * following the tree's own symlinks as the guest would, so /sbin -> usr/sbin (or -> /usr/sbin) lands
 * in the tree and never on the host.
 */
export const pathInRoot = async (root: string, inside: string): Promise<string> => {
  const parts = inside.split("/").filter(Boolean)
  let resolved: Array<string> = []
  for (let hops = 0; parts.length > 0; ) {
    const part = parts.shift()!
    if (part === ".") continue
    if (part === "..") {
      resolved.pop()
      continue
    }
    const host = path.join(root, ...resolved, part)
    const stats = await fs.lstat(host).catch(() => undefined)
    // The last component is what gets written, so a symlink there is left for the caller to replace.
    if (stats?.isSymbolicLink() && parts.length > 0) {
      if (++hops > 40) throw new Error(`too many symlinks resolving ${inside} in ${root}`)
      const target = await fs.readlink(host)
      if (target.startsWith("/")) resolved = []
      parts.unshift(...target.split("/").filter(Boolean))
      continue
    }
    resolved.push(part)
  }
  return path.join(root, ...resolved)
}

/** Writes the test init (mode 0755, root-owned) at TEST_INIT_PATH inside the tree. */
export const installTestInit = async (root: string, script: string = testInitScript()): Promise<string> => {
  const target = await pathInRoot(root, TEST_INIT_PATH)
  await fs.mkdir(path.dirname(target), { recursive: true })
  await fs.rm(target, { force: true })
  await fs.writeFile(target, script, { mode: 0o755 })
  await fs.chmod(target, 0o755)
  await fs.chown(target, 0, 0)
  return target
}

/** Apparent size of a tree in bytes (`du`, so hardlinks count once). */
export const treeBytes = async (dir: string): Promise<number> =>
  Number((await run("du", ["-s", "-B1", "--apparent-size", "--", dir])).split(/\s/)[0])

export interface Ext4ImageOptions {
  readonly source: string
  readonly image: string
  /** Default: twice the tree plus 256 MiB, so a booted system has room to write. */
  readonly sizeMb?: number
  readonly label?: string
}

/** `mkfs.ext4 -d`: an image populated from `source`, sparse on disk. Returns its size in MiB. */
export const makeExt4Image = async (options: Ext4ImageOptions): Promise<number> => {
  const sizeMb = options.sizeMb ?? Math.ceil((2 * (await treeBytes(options.source))) / 2 ** 20) + 256
  await fs.rm(options.image, { force: true })
  await run("mkfs.ext4", [
    "-F",
    "-q",
    "-L",
    options.label ?? "rootfs",
    "-d",
    options.source,
    options.image,
    `${sizeMb}M`
  ])
  return sizeMb
}
