import * as path from "node:path"
import type { FileSystem } from "@effect/platform"
import { Effect } from "effect"

/**
 * A directory being built carries the pid of the process building it, so the recovery sweep of
 * another banger process never removes work that is still in progress.
 */
export const LEASE_FILE = ".banger-lease"

export const writeLease = (fs: FileSystem.FileSystem, dir: string) =>
  fs.writeFileString(path.join(dir, LEASE_FILE), String(process.pid))

export const releaseLease = (fs: FileSystem.FileSystem, dir: string) =>
  fs.remove(path.join(dir, LEASE_FILE), { force: true })

export const isProcessAlive = (pid: number): boolean => {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** True when `dir` carries a lease of a live process. */
export const isLeased = (fs: FileSystem.FileSystem, dir: string) =>
  fs.readFileString(path.join(dir, LEASE_FILE)).pipe(
    Effect.map((content) => {
      const pid = Number.parseInt(content.trim(), 10)
      return Number.isInteger(pid) && pid > 0 && isProcessAlive(pid)
    }),
    Effect.orElseSucceed(() => false)
  )
