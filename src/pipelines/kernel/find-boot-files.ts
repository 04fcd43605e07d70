import { Effect } from "effect"
import { KernelImageInvalid } from "../../domain/errors.js"
import type { TreeEntry } from "../../domain/tree.js"
import type { ImagePaths } from "./image-paths.js"

export const KERNEL_PATTERNS = ["/boot/vmlinux", "/boot/vmlinux-*", "/boot/vmlinuz-*", "/vmlinux"] as const
export const INITRD_PATTERNS = ["/boot/initrd.img-*", "/boot/initrd*"] as const
const MODULES_DIRS = ["lib/modules", "usr/lib/modules"] as const

export interface Candidate {
  /** Where it was found: `/boot/vmlinuz-6.1.0`. */
  readonly name: string
  /** The regular file it resolves to inside the image. */
  readonly entry: TreeEntry
}

export interface Candidates {
  readonly found: ReadonlyArray<Candidate>
  /** Names that matched but lead nowhere usable, with why: for errors. */
  readonly skipped: ReadonlyArray<string>
}

/** `dir/prefix*` (or the exact name when `exact`), as image paths without the leading `/`. */
const matching = (paths: ImagePaths, dir: string, prefix: string, exact: boolean) =>
  paths
    .children(dir)
    .filter((name) => (exact ? name === prefix : name.startsWith(prefix) && name.length > prefix.length))
    .map((name) => (dir === "" ? name : `${dir}/${name}`))

const patternMatches = (paths: ImagePaths, pattern: string) => {
  const file = pattern.slice(1)
  const slash = file.lastIndexOf("/")
  const dir = slash === -1 ? "" : file.slice(0, slash)
  const base = file.slice(slash + 1)
  return base.endsWith("*") ? matching(paths, dir, base.slice(0, -1), false) : matching(paths, dir, base, true)
}

/**
 * Files matching `patterns`, each resolved inside the image and kept if it is a regular file;
 * two names of one file (a symlink and its target, or hardlinks) count once.
 */
export const findCandidates = (paths: ImagePaths, patterns: ReadonlyArray<string>): Candidates => {
  const names = [...new Set(patterns.flatMap((pattern) => patternMatches(paths, pattern)))].sort()
  const found: Array<Candidate> = []
  const skipped: Array<string> = []
  const seen = new Set<string>()
  for (const name of names) {
    const resolved = paths.resolve(name)
    if (resolved._tag === "Dangling") {
      skipped.push(`/${name} (${resolved.reason})`)
      continue
    }
    if (resolved.entry.type !== "file") {
      skipped.push(`/${name} (a ${resolved.entry.type}, not a file)`)
      continue
    }
    const inode = resolved.entry.hardlinkTo ?? resolved.entry.path
    if (seen.has(inode)) continue
    seen.add(inode)
    found.push({ name: `/${name}`, entry: resolved.entry })
  }
  return { found, skipped }
}

const describe = (candidates: Candidates) =>
  [
    candidates.found.map((candidate) =>
      candidate.name === `/${candidate.entry.path}` ? candidate.name : `${candidate.name} → /${candidate.entry.path}`
    ),
    candidates.skipped
  ]
    .flat()
    .join(", ")

/** Exactly one kernel, or a typed error listing what was found. */
export const findKernelFile = Effect.fn("findKernelFile")(function* (paths: ImagePaths, reference: string) {
  const candidates = findCandidates(paths, KERNEL_PATTERNS)
  if (candidates.found.length === 1) return candidates.found[0]!
  const looked = `looked for ${KERNEL_PATTERNS.join(", ")}`
  const reason =
    candidates.found.length === 0
      ? `no kernel found (${looked})${candidates.skipped.length > 0 ? `; found only ${describe(candidates)}` : ""}`
      : `several kernels found: ${describe(candidates)}`
  return yield* new KernelImageInvalid({ reference, reason })
})

/** The initrd if there is one; several different ones are ambiguous. */
export const findInitrd = Effect.fn("findInitrd")(function* (paths: ImagePaths, reference: string) {
  const candidates = findCandidates(paths, INITRD_PATTERNS)
  if (candidates.found.length <= 1) return candidates.found[0]
  return yield* new KernelImageInvalid({ reference, reason: `several initrds found: ${describe(candidates)}` })
})

export interface ModulesDir {
  /** The release, i.e. the directory's name. */
  readonly version: string
  /** The directory inside the image, resolved (no symlinks on the way). */
  readonly path: string
}

/**
 * `/lib/modules/<version>` (or `/usr/lib/modules/...` in usrmerged images). With several, the one
 * named after the kernel's own release wins; otherwise it is ambiguous.
 */
export const findModules = Effect.fn("findModules")(function* (
  paths: ImagePaths,
  reference: string,
  kernelRelease: string | undefined
) {
  const dirs = new Map<string, ModulesDir>()
  for (const base of MODULES_DIRS) {
    const resolved = paths.resolve(base)
    if (resolved._tag !== "Found" || resolved.entry.type !== "directory") continue
    for (const name of paths.children(resolved.entry.path)) {
      const inside = paths.resolve(`${resolved.entry.path}/${name}`)
      if (inside._tag === "Found" && inside.entry.type === "directory") {
        dirs.set(inside.entry.path, { version: name, path: inside.entry.path })
      }
    }
  }
  const all = [...dirs.values()]
  if (all.length <= 1) return all[0]
  const matching = all.find((dir) => dir.version === kernelRelease)
  if (matching) return matching
  return yield* new KernelImageInvalid({
    reference,
    reason: `several modules trees found (${all.map((dir) => `/${dir.path}`).join(", ")}) and none is named after the kernel's release`
  })
})
