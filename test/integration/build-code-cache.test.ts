/**
 * `npm run build` (vitest's global setup) leaves a V8 code cache beside dist/banger.cjs for each
 * way bin/banger runs it: the CLI (no flags) and the daemon (its flags), each made by a run of that
 * role. V8 rejects a cache silently, and bin/banger then compiles everything again: a build whose
 * caches do not fit would only be slow, so check here.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { DAEMON_NODE_FLAGS } from "../../src/daemon/node-flags.js"
import { repoRoot } from "../support/banger-cli.js"

const bundle = path.join(repoRoot, "dist", "banger.cjs")

/** Named as bin/banger looks for it: after the flags of the process. */
const cacheFor = (flags: ReadonlyArray<string>) =>
  `${bundle}${flags.map((flag) => `.${flag.replace(/^-+/, "")}`).join("")}.cache`

/**
 * Compiles the bundle as bin/banger does, in a node started with `flags` (V8 checks them), with
 * the cache for those flags: whether V8 rejected it, and the size of a cache made before running.
 */
const check = (flags: ReadonlyArray<string>): { rejected: boolean; upFrontBytes: number } => {
  const script = `const fs = require("node:fs"), vm = require("node:vm"), Module = require("node:module")
const source = Module.wrap(fs.readFileSync(${JSON.stringify(bundle)}, "utf8"))
const cached = new vm.Script(source, { filename: ${JSON.stringify(bundle)}, cachedData: fs.readFileSync(${JSON.stringify(cacheFor(flags))}) })
const upFront = new vm.Script(source, { filename: "other.js" }).createCachedData()
process.stdout.write(JSON.stringify({ rejected: cached.cachedDataRejected, upFrontBytes: upFront.length }))`
  const result = spawnSync(process.execPath, [...flags, "-e", script], {
    encoding: "utf8",
    env: { ...process.env, NODE_OPTIONS: "" }
  })
  expect(result.stderr).toBe("")
  return JSON.parse(result.stdout)
}

describe("the bundle's code caches", () => {
  it.each([
    ["the CLI", []],
    ["the daemon", DAEMON_NODE_FLAGS]
  ])("%s's is accepted by V8 and holds more than what V8 compiles up front", (_, flags) => {
    const { rejected, upFrontBytes } = check(flags)
    expect(rejected).toBe(false)
    // Made after a run, it also holds the functions that run called (~1.7× here).
    expect(fs.statSync(cacheFor(flags)).size).toBeGreaterThan(upFrontBytes * 1.3)
  })
})
