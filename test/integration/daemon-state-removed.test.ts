/** A daemon whose state dir is deleted under it notices and exits instead of lingering forever. */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { startBangerDaemon } from "../support/banger-cli.js"

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe("daemon and its state dir", () => {
  for (const how of ["removed", "replaced"] as const) {
    it(`exits 0 when the state dir is ${how}`, async () => {
      const parent = fs.mkdtempSync(path.join(os.tmpdir(), "banger-state-gone-"))
      const state = path.join(parent, "state")
      fs.mkdirSync(state)
      const daemon = await startBangerDaemon(state)
      try {
        if (how === "removed") fs.rmSync(state, { recursive: true, force: true })
        else {
          fs.renameSync(state, path.join(parent, "old"))
          fs.mkdirSync(state)
        }
        const deadline = Date.now() + 20_000
        while (alive(daemon.pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
        expect(alive(daemon.pid), "the daemon is still running 20 s later").toBe(false)
        // Already exited: stop() sends nothing and returns how it ended.
        const result = await daemon.stop()
        expect(result.code).toBe(0)
        expect(result.stderr).toContain(`the state directory ${state} was ${how}; stopped`)
      } finally {
        if (alive(daemon.pid)) await daemon.kill()
        fs.rmSync(parent, { recursive: true, force: true })
      }
    }, 60_000)
  }
})
