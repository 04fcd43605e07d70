/** The work disk step's logic with a fake Ext4Tools: call order, and no disk left when growing fails. */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Ext4Error } from "../../src/domain/errors.js"
import { DiskCopy } from "../../src/layers/disk/disk-copy.js"
import { Ext4Tools, makeExt4ToolsFake } from "../../src/layers/ext4/ext4-tools.js"
import { createWorkDisk, DEFAULT_DISK_SIZE_BYTES, parseDiskSize } from "../../src/pipelines/vm/work-disk.js"

let work: string
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-work-disk-unit-"))
})
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))

const setup = () => {
  const fake = makeExt4ToolsFake()
  const layer = Layer.mergeAll(Ext4Tools.layerTest(fake), DiskCopy.layer).pipe(Layer.provideMerge(NodeContext.layer))
  const rootfs = path.join(fs.mkdtempSync(path.join(work, "image-")), "rootfs.ext4")
  fs.writeFileSync(rootfs, "image")
  fs.truncateSync(rootfs, 1024 * 1024)
  const vmDir = fs.mkdtempSync(path.join(work, "vm-"))
  return { fake, layer, rootfs, vmDir }
}

describe("createWorkDisk (fake ext4 tools)", () => {
  it("repairs before growing, to the requested size", async () => {
    const { fake, layer, rootfs, vmDir } = setup()
    const disk = await Effect.runPromise(
      Effect.provide(Effect.scoped(createWorkDisk({ rootfs, vmDir, sizeBytes: 4 * 1024 * 1024 })), layer)
    )
    expect(fake.repairs).toEqual([disk])
    expect(fake.grows).toEqual([{ image: disk, sizeBytes: 4 * 1024 * 1024 }])
    expect(fs.readFileSync(disk).subarray(0, 5).toString()).toBe("image")
  })

  it("grows a clone of a rootfs checked clean at pull time without repairing it", async () => {
    const { fake, layer, rootfs, vmDir } = setup()
    const disk = await Effect.runPromise(
      Effect.provide(
        Effect.scoped(createWorkDisk({ rootfs, vmDir, sizeBytes: 4 * 1024 * 1024, checkedClean: true })),
        layer
      )
    )
    expect(fake.repairs).toEqual([])
    expect(fake.grows).toEqual([{ image: disk, sizeBytes: 4 * 1024 * 1024 }])
  })

  it("repairs a checked-clean clone after all when resize2fs asks for a check, and only then", async () => {
    const { fake, layer, rootfs, vmDir } = setup()
    fake.failGrow = new Ext4Error({ tool: "resize2fs", reason: "exit 1", stderr: "Please run 'e2fsck -f x' first.\n" })
    const error = await Effect.runPromise(
      Effect.flip(
        Effect.provide(
          Effect.scoped(createWorkDisk({ rootfs, vmDir, sizeBytes: 4 * 1024 * 1024, checkedClean: true })),
          layer
        )
      )
    )
    // The fake refuses every grow: one before the repair, one after; then the error stands.
    expect(error._tag).toBe("Ext4Error")
    expect(fake.repairs).toHaveLength(1)
    expect(fake.grows).toHaveLength(2)
    expect(fs.readdirSync(vmDir)).toEqual([])

    const other = setup()
    other.fake.failGrow = new Ext4Error({ tool: "resize2fs", reason: "no space", stderr: "No space left on device" })
    await Effect.runPromise(
      Effect.flip(
        Effect.provide(
          Effect.scoped(
            createWorkDisk({ rootfs: other.rootfs, vmDir: other.vmDir, sizeBytes: 4 * 1024 * 1024, checkedClean: true })
          ),
          other.layer
        )
      )
    )
    expect(other.fake.repairs).toEqual([])
    expect(other.fake.grows).toHaveLength(1)
  })

  it("neither repairs nor grows a disk already the requested size", async () => {
    const { fake, layer, rootfs, vmDir } = setup()
    await Effect.runPromise(
      Effect.provide(Effect.scoped(createWorkDisk({ rootfs, vmDir, sizeBytes: 1024 * 1024 })), layer)
    )
    expect(fake.repairs).toEqual([])
    expect(fake.grows).toEqual([])
  })

  it("removes the copied disk when growing fails", async () => {
    const { fake, layer, rootfs, vmDir } = setup()
    fake.failGrow = new Ext4Error({ tool: "resize2fs", reason: "no space", stderr: "" })
    const error = await Effect.runPromise(
      Effect.flip(Effect.provide(Effect.scoped(createWorkDisk({ rootfs, vmDir, sizeBytes: 8 * 1024 * 1024 })), layer))
    )
    expect(error._tag).toBe("Ext4Error")
    expect(fake.grows).toHaveLength(1)
    expect(fs.readdirSync(vmDir)).toEqual([])
  })

  it("parses --disk-size, 8 GiB when absent", async () => {
    expect(await Effect.runPromise(parseDiskSize(undefined))).toBe(DEFAULT_DISK_SIZE_BYTES)
    expect(await Effect.runPromise(parseDiskSize("20G"))).toBe(20 * 2 ** 30)
    const error = await Effect.runPromise(Effect.flip(parseDiskSize("1.5G")))
    expect(error._tag).toBe("InvalidSize")
  })
})
