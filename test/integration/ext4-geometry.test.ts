import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { afterAll, beforeAll } from "vitest"
import { Ext4Tools } from "../../src/layers/ext4/ext4-tools.js"
import { reservedBlocksFor } from "../../src/layers/ext4/image/allocator.js"
import { inodesFor } from "../../src/layers/ext4/image/draft.js"
import { geometryFor } from "../../src/layers/ext4/image/layout.js"
import { writeTree } from "../support/ext4-tree.js"

const ToolsLive = Ext4Tools.layer.pipe(Layer.provideMerge(NodeContext.layer))
const MiB = 2 ** 20
const GiB = 2 ** 30

let root: string
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "ext4-geometry-test-"))
})
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true })
})

const header = (image: string) => {
  const text = execFileSync("dumpe2fs", ["-h", image], { stdio: ["ignore", "pipe", "ignore"] }).toString()
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text)
    return match === null ? 0 : Number(match[1])
  }
  return {
    blocks: field("Block count"),
    inodes: field("Inode count"),
    inodesPerGroup: field("Inodes per group"),
    journalBlocks: field("Total journal blocks"),
    features: /^Filesystem features:\s+(.*)$/m.exec(text)?.[1]
  }
}

// Sizes around the places where the layout changes: no journal, journal steps, a trailing group
// too small to keep, one just big enough, many groups (backups in groups 1, 3, 5, 7, 9, 25, 27,
// 49, 81, 125), a requested inode count larger than the default.
const cases: ReadonlyArray<readonly [sizeBytes: number, inodes: number | undefined]> = [
  [2 * MiB, undefined],
  [9 * MiB, undefined],
  [100 * MiB, undefined],
  [128 * MiB + 40 * 4096, undefined],
  [128 * MiB + 400 * 4096, undefined],
  [GiB - 4096, undefined],
  [GiB, undefined],
  [3 * GiB + 123 * 4096, undefined],
  [17 * GiB, undefined],
  [64 * MiB, 50_000],
  [GiB, 300_000]
]

describe("ext4 layout", () => {
  it.live("gives e2fsck-clean filesystems of the predicted shape, backups included", () =>
    Effect.gen(function* () {
      const tools = yield* Ext4Tools
      const tree = writeTree(path.join(root, "tree"), [{ path: "f", type: "file", mode: 0o644, content: "x" }])
      for (const [sizeBytes, inodes] of cases) {
        const image = path.join(root, "image.ext4")
        yield* tools.build({ tree, output: image, sizeBytes, inodes })
        const label = `${sizeBytes} bytes, ${inodes ?? "default"} inodes`
        const blocks = Math.floor(sizeBytes / 4096)
        const predicted = geometryFor(blocks, inodes ?? inodesFor(blocks, 13), reservedBlocksFor(blocks))
        if (typeof predicted === "string") throw new Error(`${label}: ${predicted}`)
        const actual = header(image)
        expect(actual, label).toMatchObject({
          blocks: predicted.blocks,
          inodes: predicted.inodes,
          inodesPerGroup: predicted.inodesPerGroup,
          journalBlocks: predicted.journalBlocks
        })
        expect(actual.features, label).toBe(
          `${predicted.journalBlocks > 0 ? "has_journal " : ""}ext_attr dir_index filetype extent 64bit flex_bg sparse_super large_file huge_file dir_nlink extra_isize metadata_csum`
        )
        expect(fs.statSync(image).size, label).toBe(sizeBytes)
        yield* tools.check(image)
        // The backup superblock and descriptors in group 1 are as good as the primary.
        if (predicted.groups > 1) {
          const backup = spawnSync("e2fsck", ["-fn", "-b", "32768", "-B", "4096", image], {
            encoding: "utf8",
            env: { ...process.env, E2FSCK_CONFIG: "/dev/null" }
          })
          expect(backup.status, `${label}: ${backup.stdout}${backup.stderr}`).toBe(0)
        }
        fs.rmSync(image)
      }
    }).pipe(Effect.provide(ToolsLive))
  )
})
