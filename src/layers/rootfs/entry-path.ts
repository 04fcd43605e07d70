/**
 * Lexical normalization of tar names and hardlink targets. Every name is interpreted relative to
 * the rootfs root: leading `/` and `./` are dropped (absolute names land inside the root), `.` and
 * empty components vanish, and `..` collapses lexically. A `..` with nothing left to pop would
 * climb out of the root, so it is refused rather than clamped: a layer that says so is hostile or
 * broken, and silently rewriting it would hide that.
 */

export type NormalizedPath =
  | { readonly _tag: "Path"; readonly components: ReadonlyArray<string> }
  | { readonly _tag: "Unsafe"; readonly reason: string }

export const normalizeEntryPath = (raw: string): NormalizedPath => {
  if (raw.includes("\0")) return { _tag: "Unsafe", reason: "name contains a NUL byte" }
  const components: Array<string> = []
  for (const component of raw.split("/")) {
    if (component === "" || component === ".") continue
    if (component === "..") {
      if (components.length === 0) return { _tag: "Unsafe", reason: "name climbs above the root with .." }
      components.pop()
      continue
    }
    components.push(component)
  }
  return { _tag: "Path", components }
}

export const joinPath = (components: ReadonlyArray<string>): string => components.join("/")
