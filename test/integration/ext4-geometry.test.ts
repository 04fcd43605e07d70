import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { afterAll, beforeAll } from "vitest"
import { Ext4Tools } from "../../src/layers/ext4/ext4-tools.js"
import { layout } from "../../src/layers/ext4/geometry.js"
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
    free: field("Free blocks"),
    blocksPerGroup: field("Blocks per group"),
    reservedGdt: field("Reserved GDT blocks"),
    journalBlocks: field("Total journal blocks")
  }
}

// Sizes around the places where the layout changes: no journal, journal steps, a trailing group
// too small to keep, one just big enough, many groups; and inode counts that force mkfs to shrink
// its groups.
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

describe("ext4 layout prediction", () => {
  it.live("matches what mkfs makes, block for block", () =>
    Effect.gen(function* () {
      const tools = yield* Ext4Tools
      const tree = writeTree(path.join(root, "tree"), [])
      for (const [sizeBytes, inodes] of cases) {
        const image = path.join(root, "image.ext4")
        yield* tools.build({ tree, output: image, sizeBytes, inodes })
        const actual = header(image)
        const predicted = layout(sizeBytes, inodes)!
        const label = `${sizeBytes} bytes, ${inodes ?? "default"} inodes`
        expect(
          {
            blocks: predicted.blocks,
            inodes: predicted.inodes,
            blocksPerGroup: predicted.blocksPerGroup,
            reservedGdt: predicted.reservedGdtBlocks,
            journalBlocks: predicted.journalBlocks,
            // Root directory, lost+found (4 blocks) and the resize inode's indirect block.
            free: predicted.blocks - predicted.metadataBlocks - predicted.journalBlocks - 1 - 4 - 1
          },
          label
        ).toEqual(actual)
        fs.rmSync(image)
      }
    }).pipe(Effect.provide(ToolsLive))
  )
})
