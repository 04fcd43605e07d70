/** DiskCopy with the real GNU cp: holes stay holes, bytes stay exact, failures leave nothing. */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DiskCopy } from "../../src/layers/disk/disk-copy.js"

let work: string
const run = <A, E>(effect: Effect.Effect<A, E, DiskCopy>) =>
  Effect.runPromise(effect.pipe(Effect.provide(DiskCopy.layer), Effect.provide(NodeContext.layer)))

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-disk-copy-"))
})
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))

describe("DiskCopy", () => {
  it("copies a sparse 256 MiB file byte-exact without filling its holes", async () => {
    const from = path.join(work, "sparse.img")
    const fd = fs.openSync(from, "w")
    fs.writeSync(fd, Buffer.from("head"), 0, 4, 0)
    fs.writeSync(fd, Buffer.alloc(8192, 7), 0, 8192, 100 * 1024 * 1024)
    fs.ftruncateSync(fd, 256 * 1024 * 1024)
    fs.closeSync(fd)
    const to = path.join(work, "copy.img")
    await run(Effect.flatMap(DiskCopy, (disk) => disk.copy(from, to)))
    const copied = fs.statSync(to)
    expect(copied.size).toBe(256 * 1024 * 1024)
    // Allocated blocks (512 B units): the data, not the 256 MiB.
    expect(copied.blocks * 512).toBeLessThan(1024 * 1024)
    expect(fs.readFileSync(to).equals(fs.readFileSync(from))).toBe(true)
    expect(copied.mtimeMs).toBe(fs.statSync(from).mtimeMs)
  })

  it("fails with a FilesystemError naming the source, and leaves no partial copy", async () => {
    const to = path.join(work, "never.img")
    const error = await run(Effect.flip(Effect.flatMap(DiskCopy, (disk) => disk.copy(path.join(work, "missing"), to))))
    expect(error._tag).toBe("FilesystemError")
    expect(error.message).toContain("missing")
    expect(fs.existsSync(to)).toBe(false)
  })

  it("says whether the directory's filesystem can reflink, and leaves no probe file", async () => {
    const dir = fs.mkdtempSync(path.join(work, "probe-"))
    const supported = await run(Effect.flatMap(DiskCopy, (disk) => disk.reflinkSupported(dir)))
    expect(typeof supported).toBe("boolean")
    expect(fs.readdirSync(dir)).toEqual([])
  })
})
