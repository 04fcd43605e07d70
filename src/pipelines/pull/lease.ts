import * as path from "node:path"
import type { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { isIdentityAlive, ownProcessIdentity } from "../../layers/host/process-identity.js"

/**
 * A directory being built carries the identity (pid + start time) of the process building it, so
 * the recovery sweep of another banger process never removes work that is still in progress, and
 * never keeps work whose builder is dead (a zombie, or a pid now worn by an unrelated process).
 */
export const LEASE_FILE = ".banger-lease"

export const writeLease = (fs: FileSystem.FileSystem, dir: string) =>
  fs.writeFileString(path.join(dir, LEASE_FILE), ownProcessIdentity())

export const releaseLease = (fs: FileSystem.FileSystem, dir: string) =>
  fs.remove(path.join(dir, LEASE_FILE), { force: true })

/** True when `dir` carries a lease of a live process. */
export const isLeased = (fs: FileSystem.FileSystem, dir: string) =>
  fs.readFileString(path.join(dir, LEASE_FILE)).pipe(
    Effect.map(isIdentityAlive),
    Effect.orElseSucceed(() => false)
  )
