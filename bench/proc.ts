/** Reading and waiting on processes through /proc, shared by the benches. */
import * as fs from "node:fs/promises"

export const readCmdline = async (pid: number) =>
  (await fs.readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0").filter((arg) => arg !== "")

/** True once `pid` has exited (or is a zombie), within `ms`. */
export const gone = async (pid: number, ms: number) => {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const state = /^State:\s*(\S)/m.exec(await fs.readFile(`/proc/${pid}/status`, "utf8").catch(() => ""))?.[1]
    if (state === undefined || state === "Z") return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}
