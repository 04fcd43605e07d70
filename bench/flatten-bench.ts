/**
 * Times the flatten step alone (layers → temp tree + entries) on the pull bench's cached layers,
 * in-process: no registry, no mkfs. For working on src/layers/rootfs/. Run `npm run bench` once
 * first to build the layers, then: `npx tsx bench/flatten-bench.ts [runs]`.
 */
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { makeRootfsBuilder } from "../src/layers/rootfs/flatten.js"
import type { LayerFile } from "../src/layers/rootfs/rootfs-builder.js"
import { makeStatePaths } from "../src/layers/state/state-paths.js"
import { repoRoot } from "../test/support/debian-rootfs.js"

const runs = Number(process.argv[2] ?? 3)
const meta = JSON.parse(await fs.readFile(path.join(repoRoot, ".bench", "layers", "layers.json"), "utf8")) as {
  layers: ReadonlyArray<LayerFile>
}
const state = await fs.mkdtemp(path.join(os.tmpdir(), "banger-flatten-bench-"))
const builder = makeRootfsBuilder(makeStatePaths(state))
try {
  for (let run = 0; run < runs; run++) {
    const cpu = process.cpuUsage()
    const started = performance.now()
    const count = await Effect.runPromise(
      Effect.scoped(Effect.map(builder.flatten(meta.layers), (tree) => tree.entries.length))
    )
    const wall = performance.now() - started
    const used = process.cpuUsage(cpu)
    const rss = process.memoryUsage().rss
    console.log(
      `flatten: ${(wall / 1000).toFixed(2)} s wall, ${(used.user / 1e6).toFixed(2)} s user, ${(used.system / 1e6).toFixed(2)} s sys, ${count} entries, rss ${(rss / 2 ** 20).toFixed(0)} MiB`
    )
  }
} finally {
  await fs.rm(state, { recursive: true, force: true })
}
