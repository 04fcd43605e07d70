/**
 * The flattened rootfs as metadata. Files live in a plain directory tree on disk (written with
 * safe, owner-only permissions so banger never needs root); this model carries what that tree
 * cannot hold without privileges and what the ext4 image must end up with exactly.
 */
import type { StoredContent } from "./content.js"

export type EntryType = "file" | "directory" | "symlink" | "char" | "block" | "fifo"

export interface TreeEntry {
  /** Relative POSIX path inside the rootfs, no leading `/` or `./`; the root itself is "". */
  readonly path: string
  readonly type: EntryType
  /** Permission bits including setuid/setgid/sticky (`0o7777` mask), without the file type. */
  readonly mode: number
  readonly uid: number
  readonly gid: number
  /** Modification time, whole seconds since the epoch. */
  readonly mtime: number
  /** Content bytes for files, 0 for everything else. */
  readonly size: number
  /** Symlink target, stored verbatim. */
  readonly linkTarget?: string | undefined
  /**
   * For the second and later names of a hardlinked inode: the path this one shares its inode with,
   * which is always the inode's first name in `entries` order (so it comes earlier in the list).
   * Any non-directory type can carry it (files mostly, but also symlinks, devices and fifos).
   */
  readonly hardlinkTo?: string | undefined
  readonly devMajor?: number | undefined
  readonly devMinor?: number | undefined
  /** Extended attributes in layer order, e.g. `security.capability`. */
  readonly xattrs: ReadonlyArray<readonly [name: string, value: Uint8Array]>
  /** For a file's first name when flattened into a content sink: where its contents went. */
  readonly content?: StoredContent | undefined
}

/**
 * A flattened rootfs: the directory holding file contents, and the exact metadata of every entry.
 * On disk: directories are 0700, regular files 0600 with their contents (hardlinked names are real
 * hardlinks), symlinks are real symlinks with the verbatim target, and char/block devices and
 * fifos are empty 0600 regular files standing in for the node. Ownership on disk is meaningless.
 * The directory holds the image's own symlinks, which can point anywhere on the host: never
 * follow a path inside it; resolve through `entries`.
 */
export interface FlatTree {
  readonly dir: string
  /**
   * Every entry including the root (""), root first, then depth-first with siblings sorted by the
   * bytes of their names: parents before children, and the same order for the same layers.
   */
  readonly entries: ReadonlyArray<TreeEntry>
}
