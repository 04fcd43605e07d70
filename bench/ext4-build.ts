/**
 * Times an image build for a synthetic rootfs shaped like a distro image: ~50k entries, a few
 * directories with thousands of names, mostly small files, symlinks, hard links, devices, xattrs.
 * Run: `npx vite-node bench/ext4-build.ts [entries] [--inspect]` (root not needed); --inspect also
 * times reading the image back with the test inspector.
 */

import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { Effect } from "effect"
import { checkFilesystem } from "../src/layers/ext4/fsck.js"
import { applyMetadata } from "../src/layers/ext4/metadata.js"
import { makeFilesystem } from "../src/layers/ext4/mkfs.js"
import { resolveInodes } from "../src/layers/ext4/resolve.js"
import { chooseImageSize } from "../src/pipelines/pull/size.js"
import { compareImage, inspectImage, readFilesFromImage } from "../test/support/ext4-inspect.js"
import { type TreeSpec, writeTree } from "../test/support/ext4-tree.js"

const total = Number(process.argv[2] ?? 50_000)

const shape = (): Array<TreeSpec> => {
  let seed = 42
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed / 2 ** 31
  }
  const specs: Array<TreeSpec> = [{ path: "", type: "directory", mode: 0o755 }]
  const dirs = [""]
  const big = ["usr-lib", "usr-share-zoneinfo", "usr-bin"]
  for (const name of big) {
    specs.push({ path: name, type: "directory", mode: 0o755 })
    dirs.push(name)
  }
  const files: Array<string> = []
  while (specs.length < total) {
    const roll = random()
    // A fifth of all names land in three huge directories, like /usr/lib or /usr/share/zoneinfo.
    const parent = roll < 0.2 ? big[Math.floor(random() * big.length)]! : dirs[Math.floor(random() * dirs.length)]!
    const name = `${parent === "" ? "" : `${parent}/`}entry-${specs.length}-${"x".repeat(Math.floor(random() * 30))}`
    const kind = random()
    if (kind < 0.07 && name.split("/").length < 10) {
      specs.push({ path: name, type: "directory", mode: 0o755 })
      dirs.push(name)
    } else if (kind < 0.17) {
      specs.push({
        path: name,
        type: "symlink",
        mode: 0o777,
        target: `${"../".repeat(Math.floor(random() * 30))}lib/target`
      })
    } else if (kind < 0.18 && files.length > 0) {
      specs.push({ path: name, type: "file", mode: 0o755, hardlinkTo: files[Math.floor(random() * files.length)]! })
    } else if (kind < 0.181) {
      specs.push({ path: name, type: "char", mode: 0o600, major: 1, minor: 3 })
    } else {
      const size = Math.floor(random() ** 3 * 60_000)
      specs.push({
        path: name,
        type: "file",
        mode: random() < 0.01 ? 0o4755 : 0o644,
        uid: random() < 0.1 ? 1000 : 0,
        content: randomBytes(size),
        xattrs: random() < 0.005 ? [["security.capability", Buffer.alloc(20, 1)]] : []
      })
      files.push(name)
    }
  }
  // Hard links copy their target's content and type.
  const byPath = new Map(specs.map((spec) => [spec.path, spec]))
  return specs.map((spec) =>
    spec.hardlinkTo ? { ...byPath.get(spec.hardlinkTo)!, path: spec.path, hardlinkTo: spec.hardlinkTo } : spec
  )
}

const time = <A, E, R>(label: string, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const start = performance.now()
    const result = yield* effect
    console.log(`${label.padEnd(28)} ${((performance.now() - start) / 1000).toFixed(2)} s`)
    return result
  })

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ext4-bench-"))
const program = Effect.gen(function* () {
  const specs = shape()
  const tree = yield* time(
    "write tree",
    Effect.sync(() => writeTree(path.join(dir, "tree"), specs))
  )
  const size = yield* chooseImageSize({ entries: tree.entries })
  const bytes = tree.entries.reduce((sum, entry) => sum + entry.size, 0)
  console.log(
    `${tree.entries.length} entries, ${(bytes / 2 ** 20).toFixed(0)} MiB, image ${size.sizeBytes} bytes, ${size.inodes} inodes`
  )
  const output = path.join(dir, "rootfs.ext4")
  const work = path.join(dir, "work")
  fs.mkdirSync(work)
  const env = { E2FSPROGS_FAKE_TIME: "1700000000" }
  const start = performance.now()
  yield* time("mkfs.ext4 -d", makeFilesystem({ ...size, output, treeDir: tree.dir, workDir: work, env }))
  const inodes = yield* time("map entries to inodes", resolveInodes(output, tree.entries, work))
  yield* time("debugfs metadata run", applyMetadata(output, inodes, work, env))
  console.log(`${"build total".padEnd(28)} ${((performance.now() - start) / 1000).toFixed(2)} s`)
  yield* time("e2fsck -fn", checkFilesystem(output))
  if (process.argv.includes("--inspect")) {
    const image = yield* time("inspectImage (test support)", inspectImage(output))
    const problems = compareImage(tree.entries, image)
    console.log(`compareImage: ${problems.length} problems${problems.length > 0 ? `, first: ${problems[0]}` : ""}`)
    const files = image.filter((entry) => entry.type === "file")
    yield* time("readFilesFromImage (all)", readFilesFromImage(output, files))
  }
})

Effect.runPromise(program.pipe(Effect.provide(NodeContext.layer))).finally(() =>
  fs.rmSync(dir, { recursive: true, force: true })
)
