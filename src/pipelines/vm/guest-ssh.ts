import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { Effect, Either } from "effect"
import { FilesystemError, InvalidSshKey } from "../../domain/errors.js"
import {
  authorizedKeysContent,
  hostKeyAlias,
  knownHostsContent,
  parsePublicKeys,
  type SshKeyFile,
  VM_KNOWN_HOSTS
} from "../../domain/ssh.js"
import { type GuestEdit, GuestFs } from "../../layers/guest/guest-fs.js"
import { type HostKey, Ssh } from "../../layers/ssh/ssh.js"
import { resolveUser } from "./guest-init.js"

/**
 * The standard ed25519 path, so that an image whose sshd_config ignores sshd_config.d (no
 * `Include`) still offers banger's key rather than the one its package made at build time.
 */
export const GUEST_HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
/** First in Debian's `Include /etc/ssh/sshd_config.d/*.conf`, and sshd keeps the first value it reads. */
export const SSHD_DROP_IN = "/etc/ssh/sshd_config.d/00-banger.conf"
/** Where images keep sshd (usrmerged ones reach /sbin through /usr/sbin). */
export const SSHD_PATHS = ["/usr/sbin/sshd", "/sbin/sshd", "/usr/local/sbin/sshd"]

/**
 * With a HostKey given, sshd loads only the keys named: the image's own (shared by every VM made
 * from it) stay unused. Root logs in with keys only, whatever the image's config says later on.
 */
export const SSHD_CONFIG = [
  "# Written by banger: this VM's own host key, made by banger, and key-only root logins.",
  `HostKey ${GUEST_HOST_KEY}`,
  "PermitRootLogin prohibit-password",
  ""
].join("\n")

/** What configure-guest writes for ssh: the VM's host key and who may log in as root. */
export interface GuestSsh {
  readonly hostKey: HostKey
  /** authorized_keys lines: banger's key, then the `--ssh-key` files'. */
  readonly authorizedKeys: ReadonlyArray<string>
}

/** `--ssh-key` files, each checked (InvalidSshKey names the file), as authorized_keys lines. */
export const validateSshKeys = (files: ReadonlyArray<SshKeyFile> | undefined) =>
  Effect.forEach(files ?? [], (file) =>
    Either.match(parsePublicKeys(file.content), {
      onLeft: (reason) => Effect.fail(new InvalidSshKey({ path: file.path, reason })),
      onRight: Effect.succeed
    })
  ).pipe(Effect.map((lines) => lines.flat()))

/**
 * The VM's host key (in its dir), and its known_hosts: that key under the VM's alias, so it
 * goes with the VM's directory when the VM is deleted. Then banger's client key, made on first use.
 */
export const prepareGuestSsh = Effect.fn("vm.ssh.prepare")(function* (options: {
  readonly dir: string
  readonly id: string
  readonly name: string
  readonly userKeys: ReadonlyArray<string>
}) {
  const ssh = yield* Ssh
  const fs = yield* FileSystem.FileSystem
  const hostKey = yield* ssh.newHostKey(options.dir, `root@${options.name}`)
  const knownHosts = path.join(options.dir, VM_KNOWN_HOSTS)
  yield* fs
    .writeFileString(knownHosts, knownHostsContent(hostKeyAlias(options.id), hostKey.publicKey), { mode: 0o644 })
    .pipe(Effect.mapError((error) => new FilesystemError({ path: knownHosts, reason: error.message })))
  const client = yield* ssh.clientKey
  return { hostKey, authorizedKeys: [client.publicKey, ...options.userKeys] } satisfies GuestSsh
})

/** Root's home as the image's /etc/passwd says (uid 0's entry), else /root. */
const rootHome = Effect.fn("vm.ssh.rootHome")(function* (disk: string) {
  const guest = yield* GuestFs
  const entry = yield* guest.stat(disk, "/etc/passwd")
  const passwd =
    entry?.kind === "file" ? new TextDecoder().decode(yield* guest.readFile(disk, "/etc/passwd")) : undefined
  return (yield* resolveUser(disk, "", passwd, undefined)).home
})

/**
 * The host key (private 0600, public 0644, root's), the sshd drop-in, and root's authorized_keys
 * (`~/.ssh` 0700, the file 0600, root's): replaced, never appended to, so no key baked into the
 * image lets anyone in.
 */
export const sshEdits = Effect.fn("vm.ssh.edits")(function* (disk: string, setup: GuestSsh) {
  const home = yield* rootHome(disk)
  const dotSsh = path.posix.join(home, ".ssh")
  const root = { uid: 0, gid: 0 }
  return [
    { _tag: "Mkdirp", path: path.posix.dirname(SSHD_DROP_IN) },
    { _tag: "WriteFile", path: GUEST_HOST_KEY, content: setup.hostKey.privateKey, options: { ...root, mode: 0o600 } },
    {
      _tag: "WriteFile",
      path: `${GUEST_HOST_KEY}.pub`,
      content: `${setup.hostKey.publicKey}\n`,
      options: { ...root, mode: 0o644 }
    },
    { _tag: "WriteFile", path: SSHD_DROP_IN, content: SSHD_CONFIG, options: { ...root, mode: 0o644 } },
    { _tag: "Mkdirp", path: home, options: { ...root, mode: 0o700 } },
    { _tag: "Mkdirp", path: dotSsh, options: { ...root, mode: 0o700 } },
    {
      _tag: "WriteFile",
      path: path.posix.join(dotSsh, "authorized_keys"),
      content: authorizedKeysContent(setup.authorizedKeys),
      options: { ...root, mode: 0o600 }
    }
  ] satisfies Array<GuestEdit>
})

/** Where the image has sshd, symlinks resolved inside it; undefined when it has none. */
export const findSshd = Effect.fn("vm.ssh.findSshd")(function* (disk: string) {
  const guest = yield* GuestFs
  for (const candidate of SSHD_PATHS) {
    const entry = yield* guest.stat(disk, candidate)
    if (entry?.kind === "file" && (entry.mode & 0o111) !== 0) return candidate
  }
  return undefined
})
