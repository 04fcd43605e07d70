import type { TreeEntry } from "../../src/domain/tree.js"

/** A root-owned entry for tests that build entries by hand: 0755 directories, 0644 everything else. */
export const entry = (path: string, type: TreeEntry["type"], extra: Partial<TreeEntry> = {}): TreeEntry => ({
  path,
  type,
  mode: type === "directory" ? 0o755 : 0o644,
  uid: 0,
  gid: 0,
  mtime: 1_700_000_000,
  size: 0,
  xattrs: [],
  ...extra
})
