/**
 * Argument errors found by @effect/cli read like every other banger error (one `banger: …` line,
 * or a JSON error with --json), and `--help` exits 0 wherever it is given.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { runBanger } from "../support/banger-cli.js"

const state = fs.mkdtempSync(path.join(os.tmpdir(), "banger-cli-args-"))
afterAll(() => fs.rmSync(state, { recursive: true, force: true }))

const expectOnlyLine = (stderr: string, pattern: RegExp) => {
  expect(stderr.endsWith("\n"), stderr).toBe(true)
  const lines = stderr.slice(0, -1).split("\n")
  expect(lines, stderr).toHaveLength(1)
  expect(lines[0]).toMatch(pattern)
}

describe("banger argument errors", () => {
  it("a flag value @effect/cli rejects is one banger: line, exit 1", async () => {
    // (Paths are not such values: the daemon checks them, with the user's rights; see client-paths.test.ts.)
    const result = await runBanger(["--state-dir", state, "vm", "create", "dev", "--memory", "lots"])
    expect(result.code).toBe(1)
    expect(result.stdout).toBe("")
    expectOnlyLine(result.stderr, /^banger: .*'lots' is not a integer/)
  })

  it("with --json it is a JSON error object on stdout", async () => {
    const result = await runBanger(["--state-dir", state, "vm", "create", "dev", "--cpus", "x", "--json"])
    expect(result.code).toBe(1)
    expect(result.stderr).toBe("")
    const error = (JSON.parse(result.stdout) as { error: { _tag: string; message: string } }).error
    expect(error._tag).toBe("InvalidValue")
    expect(error.message).toMatch(/'x' is not a integer/)
  })

  it("a missing argument and an unknown subcommand are one line each", async () => {
    const missing = await runBanger(["--state-dir", state, "vm", "create"])
    expect(missing.code).toBe(1)
    expectOnlyLine(missing.stderr, /^banger: Missing argument <NAME>$/)
    const unknown = await runBanger(["--state-dir", state, "frobnicate"])
    expect(unknown.code).toBe(1)
    expectOnlyLine(unknown.stderr, /^banger: Invalid subcommand/)
  })

  it("--help exits 0 after global options, alone, and after a subcommand", async () => {
    for (const args of [
      ["--state-dir", state, "--help"],
      [`--state-dir=${state}`, "-h"],
      ["--help"],
      ["--state-dir", state, "vm", "create", "--help"]
    ]) {
      const result = await runBanger(args)
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: "" })
      expect(result.stdout).toContain("USAGE")
    }
  })
})
