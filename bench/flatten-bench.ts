/**
 * Times the image build alone, in-process, on the pull bench's cached layers: flatten into an image
 * draft (contents written to their blocks), plan the tree, write the metadata. No registry, no
 * daemon, no e2fsck. For working on src/layers/rootfs/ and src/layers/ext4/. Run `npm run bench`
 * once first to build the layers, then: `npx tsx bench/flatten-bench.ts [runs] [--disk]`
 * (`--disk`: flatten into a temp tree instead, as the tests' `flatten` does; `--layers=FILE`: the
 * layers of another image, a JSON file of the same form as `.bench/layers/layers.json`).
 */
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { openDraft } from "../src/layers/ext4/build.js"
import { makeRootfsBuilder } from "../src/layers/rootfs/flatten.js"
import type { LayerFile } from "../src/layers/rootfs/rootfs-builder.js"
import { makeStatePaths } from "../src/layers/state/state-paths.js"
import { repoRoot } from "../test/support/debian-rootfs.js"

const args = process.argv.slice(2)
const runs = Number(args.find((arg) => /^\d+$/.test(arg)) ?? 3)
const disk = args.includes("--disk")
const layersAt = args.find((arg) => arg.startsWith("--layers="))?.slice("--layers=".length)
const meta = JSON.parse(
  await fs.readFile(layersAt ?? path.join(repoRoot, ".bench", "layers", "layers.json"), "utf8")
) as {
  layers: ReadonlyArray<LayerFile>
}
const state = await fs.mkdtemp(path.join(os.tmpdir(), "banger-flatten-bench-"))
const builder = makeRootfsBuilder(makeStatePaths(state))
const seconds = (from: number) => ((performance.now() - from) / 1000).toFixed(2)

const intoImage = Effect.scoped(
  Effect.gen(function* () {
    const output = path.join(state, "rootfs.ext4")
    const draft = yield* openDraft({ output })
    let mark = performance.now()
    const entries = yield* builder.flattenInto(meta.layers, draft.contents)
    const flatten = seconds(mark)
    mark = performance.now()
    const image = yield* draft.plan(entries)
    const plan = seconds(mark)
    mark = performance.now()
    yield* image.write({ sizeBytes: Math.max(2 ** 30, Math.ceil((image.requiredBytes * 1.25) / 4096) * 4096) })
    return `${entries.length} entries (flatten ${flatten} s, plan ${plan} s, write ${seconds(mark)} s)`
  })
)
const intoDisk = Effect.scoped(Effect.map(builder.flatten(meta.layers), (tree) => `${tree.entries.length} entries`))

try {
  for (let run = 0; run < runs; run++) {
    const cpu = process.cpuUsage()
    const started = performance.now()
    const summary = await Effect.runPromise(disk ? intoDisk : intoImage)
    const used = process.cpuUsage(cpu)
    const rss = process.memoryUsage().rss
    console.log(
      `${disk ? "flatten to disk" : "image build"}: ${seconds(started)} s wall, ${(used.user / 1e6).toFixed(2)} s user, ${(used.system / 1e6).toFixed(2)} s sys, ${summary}, rss ${(rss / 2 ** 20).toFixed(0)} MiB`
    )
  }
} finally {
  await fs.rm(state, { recursive: true, force: true })
}
