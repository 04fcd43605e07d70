/**
 * The VM work disk for real: banger's ext4 writer makes a pulled-style image, the step copies it
 * with GNU cp and grows it with e2fsck + resize2fs; on an XFS filesystem the copy is a reflink.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DiskCopy } from "../../src/layers/disk/disk-copy.js"
import { Ext4Tools } from "../../src/layers/ext4/ext4-tools.js"
import { createWorkDisk, makeWorkDisk, WORK_DISK_NAME } from "../../src/pipelines/vm/work-disk.js"
import { readFileFromImage } from "../support/ext4-inspect.js"
import { type TreeSpec, writeTree } from "../support/ext4-tree.js"

const Live = Layer.mergeAll(Ext4Tools.layer, DiskCopy.layer).pipe(Layer.provideMerge(NodeContext.layer))
const run = <A, E>(effect: Effect.Effect<A, E, Ext4Tools | DiskCopy | NodeContext.NodeContext>) =>
  Effect.runPromise(Effect.provide(effect, Live))

const MiB = 2 ** 20
let work: string

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-work-disk-"))
})
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))

/** A pulled-style image: written by banger's own ext4 writer from a tree. */
const pulledImage = async (dir: string, specs: ReadonlyArray<TreeSpec>, sizeBytes: number) => {
  const tree = writeTree(path.join(dir, "tree"), specs)
  const output = path.join(dir, "rootfs.ext4")
  await run(Effect.flatMap(Ext4Tools, (tools) => tools.build({ tree, output, sizeBytes })))
  fs.rmSync(tree.dir, { recursive: true, force: true })
  return output
}

const blockCount = (image: string) => {
  const header = execFileSync("dumpe2fs", ["-h", image], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
  return Number(/^Block count:\s+(\d+)$/m.exec(header)?.[1])
}

const fsck = (image: string) => execFileSync("e2fsck", ["-fn", image], { stdio: "pipe", encoding: "utf8" })

describe("createWorkDisk", () => {
  it("copies the image to <vm dir>/disk.ext4 and grows it, clean and still sparse", async () => {
    const dir = fs.mkdtempSync(path.join(work, "grow-"))
    const payload = randomBytes(3 * MiB)
    const rootfs = await pulledImage(
      dir,
      [
        { path: "etc", type: "directory", mode: 0o755 },
        { path: "etc/os-release", type: "file", mode: 0o644, content: "ID=test\n" },
        { path: "payload.bin", type: "file", mode: 0o644, content: payload }
      ],
      64 * MiB
    )
    const before = fs.readFileSync(rootfs)
    const vmDir = fs.mkdtempSync(path.join(work, "vm-"))
    const size = 2 * 2 ** 30
    const disk = await run(Effect.scoped(createWorkDisk({ rootfs, vmDir, sizeBytes: size })))

    expect(disk).toBe(path.join(vmDir, WORK_DISK_NAME))
    expect(fs.statSync(disk).size).toBe(size)
    expect(blockCount(disk)).toBe(size / 4096)
    fsck(disk)
    // Allocated (512 B units): the data and metadata, nowhere near the 2 GiB.
    expect(fs.statSync(disk).blocks * 512).toBeLessThan(80 * MiB)
    const read = await run(readFileFromImage(disk, "payload.bin"))
    expect(Buffer.from(read).equals(payload)).toBe(true)
    expect(fs.readFileSync(rootfs).equals(before)).toBe(true)
  })

  it("grows a pulled image's clone without an e2fsck first, and repairs one resize2fs wants checked", async () => {
    const dir = fs.mkdtempSync(path.join(work, "checked-"))
    const specs: ReadonlyArray<TreeSpec> = [
      { path: "etc", type: "directory", mode: 0o755 },
      { path: "etc/os-release", type: "file", mode: 0o644, content: "ID=test\n" }
    ]
    const rootfs = await pulledImage(dir, specs, 64 * MiB)
    const size = 1024 * MiB
    // banger's writer leaves a never-mounted, clean filesystem: resize2fs takes it as it is.
    const made = await run(
      Effect.scoped(
        makeWorkDisk({ rootfs, vmDir: fs.mkdtempSync(path.join(work, "vm-")), sizeBytes: size, checkedClean: true })
      )
    )
    expect(made.repaired).toBe(false)
    expect(blockCount(made.disk)).toBe(size / 4096)
    fsck(made.disk)

    // Mounted after its last check (as a user's mount of the file would leave it): resize2fs
    // refuses, so the step checks and repairs it first after all, and says so.
    execFileSync("debugfs", ["-w", "-R", "ssv mtime 20300101", rootfs], { stdio: "pipe" })
    const probe = path.join(dir, "probe.ext4")
    fs.copyFileSync(rootfs, probe)
    fs.truncateSync(probe, size)
    const refused = spawnSync("resize2fs", [probe], { encoding: "utf8" })
    expect([refused.status, refused.stderr]).toEqual([1, expect.stringContaining("Please run 'e2fsck -f")])
    const remounted = await run(
      Effect.scoped(
        makeWorkDisk({ rootfs, vmDir: fs.mkdtempSync(path.join(work, "vm-")), sizeBytes: size, checkedClean: true })
      )
    )
    expect(remounted.repaired).toBe(true)
    expect(blockCount(remounted.disk)).toBe(size / 4096)
    fsck(remounted.disk)
  })

  it("refuses a size smaller than the image with SizeTooSmall, leaving nothing", async () => {
    const dir = fs.mkdtempSync(path.join(work, "small-"))
    const rootfs = await pulledImage(dir, [{ path: "a", type: "file", mode: 0o644, content: "a" }], 64 * MiB)
    const vmDir = fs.mkdtempSync(path.join(work, "vm-"))
    const error = await run(Effect.flip(Effect.scoped(createWorkDisk({ rootfs, vmDir, sizeBytes: 32 * MiB }))))
    expect(error._tag).toBe("SizeTooSmall")
    expect(error.message).toContain(`needs at least ${64 * MiB} bytes`)
    expect(fs.readdirSync(vmDir)).toEqual([])
  })

  it("removes the disk when a later step in its scope fails", async () => {
    const dir = fs.mkdtempSync(path.join(work, "rollback-"))
    const rootfs = await pulledImage(dir, [{ path: "a", type: "file", mode: 0o644, content: "a" }], 64 * MiB)
    const vmDir = fs.mkdtempSync(path.join(work, "vm-"))
    const seen: Array<boolean> = []
    const failed = await run(
      Effect.flip(
        Effect.scoped(
          Effect.gen(function* () {
            const disk = yield* createWorkDisk({ rootfs, vmDir, sizeBytes: 128 * MiB })
            seen.push(fs.existsSync(disk))
            return yield* Effect.fail("boot failed" as const)
          })
        )
      )
    )
    expect(failed).toBe("boot failed")
    expect(seen).toEqual([true])
    expect(fs.readdirSync(vmDir)).toEqual([])
  })
})

describe("createWorkDisk on XFS with reflink", () => {
  let mountPoint: string
  let backing: string
  let mounted = false

  beforeAll(() => {
    backing = path.join(work, "xfs.img")
    mountPoint = fs.mkdtempSync(path.join(work, "xfs-mnt-"))
    execFileSync("truncate", ["-s", "2G", backing])
    execFileSync("mkfs.xfs", ["-q", "-m", "reflink=1", backing])
    // A failure here (no loop devices, not root) fails every test below: nothing is skipped.
    execFileSync("mount", ["-o", "loop", backing, mountPoint])
    mounted = true
  })
  afterAll(() => {
    if (mounted) execFileSync("umount", [mountPoint])
    fs.rmSync(backing, { force: true })
  })

  const freeBytes = (dir: string) => {
    execFileSync("sync", ["-f", dir])
    const stats = fs.statfsSync(dir)
    return stats.bavail * stats.bsize
  }

  it("reflinks a ~300 MB image: shared extents, free space barely moves, and faster than a copy", async () => {
    const source = fs.mkdtempSync(path.join(work, "big-"))
    const specs: Array<TreeSpec> = [{ path: "data", type: "directory", mode: 0o755 }]
    for (let i = 0; i < 9; i++) {
      specs.push({ path: `data/chunk-${i}`, type: "file", mode: 0o644, content: randomBytes(30 * MiB) })
    }
    const built = await pulledImage(source, specs, 300 * MiB)
    const rootfs = path.join(mountPoint, "rootfs.ext4")
    fs.copyFileSync(built, rootfs)
    const imageBytes = fs.statSync(rootfs).size

    const vmDir = fs.mkdtempSync(path.join(mountPoint, "vm-"))
    const freeBefore = freeBytes(mountPoint)
    let started = performance.now()
    const disk = await run(Effect.scoped(createWorkDisk({ rootfs, vmDir, sizeBytes: imageBytes })))
    const reflinkMs = performance.now() - started
    const used = freeBefore - freeBytes(mountPoint)

    const extents = execFileSync("filefrag", ["-v", disk], { encoding: "utf8" })
    expect(extents).toMatch(/shared/)
    // Cloned in-process (no cp): the image's timestamps kept all the same.
    expect(Math.abs(fs.statSync(disk).mtimeMs - fs.statSync(rootfs).mtimeMs)).toBeLessThan(0.01)
    expect(used).toBeLessThan(8 * MiB)
    fsck(disk)

    // The same image grown to 8 GiB on the same filesystem: reflink, then e2fsck -fp and resize2fs.
    const grownDir = fs.mkdtempSync(path.join(mountPoint, "vm-"))
    started = performance.now()
    const grown = await run(Effect.scoped(createWorkDisk({ rootfs, vmDir: grownDir, sizeBytes: 8 * 2 ** 30 })))
    const reflinkGrowMs = performance.now() - started
    fsck(grown)

    // The same image on the host's ext4, where cp has to copy the data.
    const copyDir = fs.mkdtempSync(path.join(work, "vm-copy-"))
    started = performance.now()
    await run(Effect.scoped(createWorkDisk({ rootfs: built, vmDir: copyDir, sizeBytes: imageBytes })))
    const copyMs = performance.now() - started

    console.log(
      `work disk of a ${Math.round(imageBytes / MiB)} MiB image: reflink ${reflinkMs.toFixed(0)} ms ` +
        `(+ grow to 8 GiB: ${reflinkGrowMs.toFixed(0)} ms), sparse copy on ext4 ${copyMs.toFixed(0)} ms; ` +
        `XFS space used by the reflink: ${(used / MiB).toFixed(2)} MiB`
    )
    expect(reflinkMs).toBeLessThan(copyMs)
  }, 180_000)
})
