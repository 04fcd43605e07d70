/**
 * The socket's permissions are the daemon's access control: another user is refused by the
 * kernel unless `--group` names a group it belongs to. Checked with a real connection attempt
 * from a process running as that user, not just by reading mode bits.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { withBangerDaemon } from "../support/banger-cli.js"

const NOBODY = { uid: 65534, gid: 65534 }

/** Connects to `socket` as nobody; answers the error code, or CONNECTED. */
const connectAsNobody = (socket: string) => {
  const probe = `const s = require("node:net").connect(${JSON.stringify(socket)});
s.on("connect", () => { console.log("CONNECTED"); process.exit(0) });
s.on("error", (e) => { console.log(e.code); process.exit(0) })`
  const result = spawnSync(
    "setpriv",
    [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, "--clear-groups", process.execPath, "-e", probe],
    { encoding: "utf8", timeout: 20_000 }
  )
  return result.stdout.trim()
}

let work: string

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-access-"))
  // Let other users reach the socket file itself, so only its own mode decides.
  fs.chmodSync(work, 0o755)
})

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

describe("daemon socket access", () => {
  it("refuses another user by default (0600)", async () => {
    const state = path.join(work, "private")
    fs.mkdirSync(state, { mode: 0o755 })
    await withBangerDaemon(state, async (daemon) => {
      expect(fs.statSync(daemon.socket).mode & 0o777).toBe(0o600)
      expect(connectAsNobody(daemon.socket)).toBe("EACCES")
    })
  })

  it("admits members of --group (0660)", async () => {
    const state = path.join(work, "shared")
    fs.mkdirSync(state, { mode: 0o755 })
    await withBangerDaemon(
      state,
      async (daemon) => {
        const stat = fs.statSync(daemon.socket)
        expect(stat.mode & 0o777).toBe(0o660)
        expect(stat.gid).toBe(NOBODY.gid)
        expect(connectAsNobody(daemon.socket)).toBe("CONNECTED")
        // Bound under a temporary name and renamed into place once its group and mode are set.
        expect(fs.readdirSync(path.dirname(daemon.socket)).filter((name) => name.endsWith(".new"))).toEqual([])
      },
      { extraArgs: ["--group", "nogroup"] }
    )
  })
})
