import type { TreeEntry } from "../../domain/tree.js"

/** Linux's own bound on symlinks followed in one lookup. */
const MAX_SYMLINK_HOPS = 40

export type Resolved =
  | { readonly _tag: "Found"; readonly entry: TreeEntry }
  | { readonly _tag: "Dangling"; readonly reason: string }

/**
 * Paths of a flattened image, looked up the way the image's own kernel would inside it: symlinks
 * are followed through `entries` only, `/` is the image's root and `..` never climbs above it.
 * Nothing here touches the host, so a link to `/etc/passwd` means the image's file of that name.
 */
export const imagePaths = (entries: ReadonlyArray<TreeEntry>) => {
  const byPath = new Map(entries.map((entry) => [entry.path, entry]))

  const resolve = (file: string): Resolved => {
    const pending = file.split("/").filter((part) => part !== "")
    const current: Array<string> = []
    let hops = 0
    while (pending.length > 0) {
      const part = pending.shift()!
      if (part === ".") continue
      if (part === "..") {
        current.pop()
        continue
      }
      const candidate = [...current, part].join("/")
      const entry = byPath.get(candidate)
      if (entry === undefined) return { _tag: "Dangling", reason: `/${candidate} does not exist in the image` }
      if (entry.type === "symlink") {
        if (++hops > MAX_SYMLINK_HOPS) return { _tag: "Dangling", reason: "too many levels of symlinks" }
        const target = entry.linkTarget ?? ""
        if (target.startsWith("/")) current.length = 0
        pending.unshift(...target.split("/").filter((segment) => segment !== ""))
        continue
      }
      if (pending.length > 0 && entry.type !== "directory") {
        return { _tag: "Dangling", reason: `/${candidate} is not a directory` }
      }
      current.push(part)
    }
    const entry = byPath.get(current.join("/"))
    return entry === undefined ? { _tag: "Dangling", reason: "no such entry" } : { _tag: "Found", entry }
  }

  /** Names directly inside `dir` (an image path without leading `/`), sorted. */
  const children = (dir: string): ReadonlyArray<string> => {
    const prefix = dir === "" ? "" : `${dir}/`
    return entries
      .filter(
        (entry) => entry.path.startsWith(prefix) && entry.path !== dir && !entry.path.slice(prefix.length).includes("/")
      )
      .map((entry) => entry.path.slice(prefix.length))
  }

  /** Every entry strictly below `dir`, parents first. */
  const below = (dir: string): ReadonlyArray<TreeEntry> => entries.filter((entry) => entry.path.startsWith(`${dir}/`))

  return { resolve, children, below }
}

export type ImagePaths = ReturnType<typeof imagePaths>
