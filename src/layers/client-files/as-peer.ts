import type { Peer } from "../../domain/peer.js"

/**
 * The argv that runs a command with the peer's ids and groups, as the kernel reported them: never
 * the daemon's, and no capabilities (setpriv drops them with the uid change).
 */
export const setprivArgs = (peer: Peer, command: ReadonlyArray<string>): Array<string> => [
  `--reuid=${peer.uid}`,
  `--regid=${peer.gid}`,
  peer.groups.length === 0 ? "--clear-groups" : `--groups=${peer.groups.join(",")}`,
  "--",
  ...command
]

/**
 * Streams one regular file to stdout, opened as the peer. The type is checked on the descriptor
 * it opened (/dev/fd/3), so a name swapped for a device after the first check is still refused.
 * Exit 65: not a regular file; a failed open exits 2 with the shell's message (errno text).
 */
export const READ_FILE_SCRIPT = [
  'if [ -e "$1" ] && [ ! -f "$1" ]; then exit 65; fi',
  'exec 3<"$1"',
  "[ -f /dev/fd/3 ] || exit 65",
  "exec cat 0<&3"
].join("\n")

/**
 * A tar stream of a directory's subdirectories and regular files (symlinks, devices and the like
 * are left out; hard links travel as plain copies), read as the peer. Exit 66: not a directory. A
 * pipeline's status is tar's alone, so the caller also counts any stderr (find's "Permission
 * denied" on a directory it could not read) as a failure: a tree is copied whole or not at all.
 */
export const READ_TREE_SCRIPT = [
  'if [ -e "$1" ] && [ ! -d "$1" ]; then exit 66; fi',
  // cd names no errno; ls does when the path cannot be reached, and when only the directory itself
  // cannot be searched, that is what denied it.
  'cd -- "$1" 2>/dev/null || { ls -d -- "$1" >/dev/null && echo "cd: $1: Permission denied" >&2; exit 2; }',
  "find . -mindepth 1 \\( -type d -o -type f \\) -print0 | tar --null --no-recursion --hard-dereference -T - -cf -"
].join("\n")

export const NOT_A_FILE = 65
export const NOT_A_DIRECTORY = 66

/** What a failed read as the peer means, from its exit status and the first line of its stderr. */
export const readFailure = (
  status: number | null,
  stderr: string,
  kind: "file" | "directory"
): { readonly refused: boolean; readonly reason: string } => {
  if (status === NOT_A_FILE) return { refused: false, reason: "not a regular file" }
  if (status === NOT_A_DIRECTORY) return { refused: false, reason: "not a directory" }
  if (/Permission denied/.test(stderr)) return { refused: true, reason: "not readable" }
  if (/No such file/.test(stderr))
    return { refused: false, reason: `${kind === "file" ? "file" : "directory"} does not exist` }
  if (/Not a directory/.test(stderr)) return { refused: false, reason: "a component of the path is not a directory" }
  const line = stderr.split("\n").find((text) => text.trim() !== "")
  return { refused: false, reason: line === undefined ? `reading it failed (exit ${status})` : line.trim() }
}
