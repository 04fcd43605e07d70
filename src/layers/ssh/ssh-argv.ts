import { DEFAULT_SSH_USER, type SshTarget } from "../../domain/ssh.js"

export interface SshInvocation {
  readonly user?: string | undefined
  /** `-t`: a terminal on the guest side (`vm attach`). */
  readonly tty?: boolean | undefined
  /** Run this instead of a login shell; ssh joins the words with spaces, as it always does. */
  readonly command?: ReadonlyArray<string> | undefined
}

/**
 * `vm attach`: the guest's tmux session `banger` (made, or joined when it exists) where the guest
 * has tmux, else the user's login shell. Decided on the guest, so a tmux installed later counts.
 */
export const ATTACH_COMMAND =
  'if command -v tmux >/dev/null 2>&1; then exec tmux new-session -A -s banger; else exec "$SHELL" -l; fi'

/**
 * The arguments of the system ssh (after `ssh`) for a VM. The host key must be the one banger made
 * for this VM, filed in the VM's own known_hosts under its alias: no trust on first use, no other
 * known_hosts, no other key type. `-F /dev/null` keeps the user's and the system's ssh_config out
 * of it (a `Host *` with a ProxyJump or `StrictHostKeyChecking no` would change what this means).
 */
export const sshArgv = (target: SshTarget, invocation: SshInvocation = {}): Array<string> => [
  "-F",
  "/dev/null",
  "-i",
  target.identityFile,
  "-o",
  "IdentitiesOnly=yes",
  "-o",
  `UserKnownHostsFile=${target.knownHostsFile}`,
  "-o",
  "GlobalKnownHostsFile=/dev/null",
  "-o",
  "StrictHostKeyChecking=yes",
  "-o",
  `HostKeyAlias=${target.hostKeyAlias}`,
  "-o",
  "HostKeyAlgorithms=ssh-ed25519",
  "-o",
  "UpdateHostKeys=no",
  "-o",
  "ConnectTimeout=10",
  "-p",
  String(target.port),
  "-l",
  invocation.user ?? DEFAULT_SSH_USER,
  ...(invocation.tty ? ["-t"] : []),
  target.address,
  ...(invocation.command !== undefined && invocation.command.length > 0 ? ["--", ...invocation.command] : [])
]

/** POSIX shell quoting, only where a word needs it, so the line stays readable. */
const shellWord = (word: string) =>
  /^[A-Za-z0-9@%+=:,./_-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`

/** The ssh command line `vm show` prints: paste it into a shell and it does what `banger vm ssh` does. */
export const sshCommandLine = (target: SshTarget, invocation: SshInvocation = {}) =>
  ["ssh", ...sshArgv(target, invocation)].map(shellWord).join(" ")
