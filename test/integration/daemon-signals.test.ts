/**
 * takeOverSignals in a child process of its own (signals to the test's worker would reach vitest):
 * a SIGTERM that libuv has caught for the listener in place, but not yet delivered, reaches the
 * listener that takes over in the same turn of the event loop.
 */
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const signals = path.join(root, "dist", "daemon", "signals.js")

const script = `
import { takeOverSignals } from ${JSON.stringify(signals)}
process.on("SIGTERM", () => console.log("the old listener"))
// Sent and caught now, delivered only once this turn of the event loop is over.
process.kill(process.pid, "SIGTERM")
const timer = setTimeout(() => { console.log("no signal arrived"); process.exit(3) }, 2000)
const release = takeOverSignals((signal) => {
  console.log("taken over: " + signal)
  release()
  clearTimeout(timer)
})
`

describe("takeOverSignals", () => {
  it("a signal caught just before the takeover reaches the new listener, not the old one", () => {
    const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 20_000
    })
    expect(result.stdout.trim()).toBe("taken over: SIGTERM")
    expect(result.status).toBe(0)
  })
})
