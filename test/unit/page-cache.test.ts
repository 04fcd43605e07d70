import { spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { dropPageCache } from "../../src/layers/host/page-cache.js"
import { repoRoot } from "../support/banger-cli.js"

const TMPFS_MAGIC = 0x01021994
const MiB = 1024 * 1024

/** A scratch dir on a filesystem with a page cache to drop from (tmpfs pages are the file itself). */
const scratch = () => {
  const base = fs.statfsSync(os.tmpdir()).type === TMPFS_MAGIC ? repoRoot : os.tmpdir()
  return fs.mkdtempSync(path.join(base, "banger-page-cache-"))
}

/** The file's pages in the page cache, as util-linux's fincore counts them. */
const residentPages = (file: string) => {
  const run = spawnSync("fincore", ["--bytes", "--noheadings", "--output", "PAGES", file], { encoding: "utf8" })
  if (run.status !== 0) throw new Error(`fincore failed: ${run.stderr}`)
  return Number(run.stdout.trim())
}

describe("dropPageCache", () => {
  it("drops a synced file's pages, and keeps (then still reads) what is not yet on disk", async () => {
    const dir = scratch()
    try {
      const file = path.join(dir, "image")
      const synced = randomBytes(16 * MiB)
      const fd = fs.openSync(file, "w+")
      try {
        fs.writeSync(fd, synced, 0, synced.length, 0)
        fs.fdatasyncSync(fd)
        expect(residentPages(file)).toBeGreaterThanOrEqual(4000)
        expect(await dropPageCache(fd)).toBe(0)
        expect(residentPages(file)).toBeLessThan(100)

        // Written, not synced: the drop only sends it to the disk, and nothing is lost.
        const unsynced = randomBytes(16 * MiB)
        fs.writeSync(fd, unsynced, 0, unsynced.length, synced.length)
        expect(await dropPageCache(fd)).toBe(0)
        const back = Buffer.alloc(synced.length + unsynced.length)
        fs.readSync(fd, back, 0, back.length, 0)
        expect(back.equals(Buffer.concat([synced, unsynced]))).toBe(true)
      } finally {
        fs.closeSync(fd)
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("reports a bad descriptor's error number instead of throwing", async () => {
    expect(await dropPageCache(1_000_000)).toBe(9) // EBADF
  })
})
