/**
 * The VMM processes a test's VMs run as: QEMU processes (by their binary's name, so not, say, the
 * cp that makes a work disk) with an argument naming a path under the test's own directory.
 */
import * as fs from "node:fs"
import * as path from "node:path"

export const qemuProcessesNaming = (dir: string): Array<number> =>
  fs
    .readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")
        return path.basename(argv[0]!).startsWith("qemu-system") && argv.some((arg) => arg.includes(dir))
      } catch {
        return false
      }
    })
    .map(Number)
