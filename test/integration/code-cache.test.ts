/**
 * bin/banger compiles the bundle with a V8 code cache that V8 accepts, in the CLI (no flags) and in
 * the daemon the CLI starts (DAEMON_NODE_FLAGS): V8 rejects a cache made under other flags, so the
 * build makes one per set and bin/banger picks the one for its own. Watched from inside the real
 * bin/banger through a preloaded hook (NODE_OPTIONS: not V8 flags, so it changes no cache).
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { DAEMON_NODE_FLAGS } from "../../src/daemon/node-flags.js"
import { bangerBin } from "../support/banger-cli.js"

/** Reports, for each script compiled, whether it was given cached data and whether V8 rejected it. */
const HOOK = `
const vm = require("node:vm")
const Original = vm.Script
vm.Script = class extends Original {
  constructor(source, options) {
    super(source, options)
    process.stderr.write("code-cache " + JSON.stringify({ given: options?.cachedData !== undefined, rejected: this.cachedDataRejected ?? null }) + "\\n")
  }
}
`

const compiledWith = (flags: ReadonlyArray<string>) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "banger-code-cache-"))
  try {
    const hook = path.join(dir, "hook.cjs")
    fs.writeFileSync(hook, HOOK)
    const result = spawnSync(process.execPath, [...flags, bangerBin, "--version"], {
      env: { ...process.env, NODE_OPTIONS: `--require=${hook}` },
      encoding: "utf8"
    })
    expect(result.status).toBe(0)
    const reports = result.stderr
      .split("\n")
      .filter((line) => line.startsWith("code-cache "))
      .map((line) => JSON.parse(line.slice("code-cache ".length)) as { given: boolean; rejected: boolean | null })
    expect(reports).toHaveLength(1)
    return reports[0]!
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

describe("bin/banger's code cache", () => {
  it("is accepted without flags and under the daemon's flags", () => {
    expect(DAEMON_NODE_FLAGS.length).toBeGreaterThan(0)
    expect(compiledWith([])).toEqual({ given: true, rejected: false })
    expect(compiledWith(DAEMON_NODE_FLAGS)).toEqual({ given: true, rejected: false })
  })

  it("falls back to the plain cache under flags it has none for, which V8 then rejects", () => {
    expect(compiledWith(["--max-semi-space-size=3"])).toEqual({ given: true, rejected: true })
  })
})
