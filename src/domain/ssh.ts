import { Either, Schema } from "effect"

/** Who `vm ssh` logs in as unless `--user` says otherwise: the only account banger gives a key. */
export const DEFAULT_SSH_USER = "root"
export const SSH_PORT = 22

/** In each VM's directory: the host key banger made for the guest, and the known_hosts naming it. */
export const VM_HOST_KEY = "ssh_host_ed25519_key"
export const VM_KNOWN_HOSTS = "known_hosts"

/**
 * The name the VM's host key is filed under in its known_hosts (ssh's HostKeyAlias), so the entry
 * is tied to the VM rather than to its address, which another VM may get after this one is deleted.
 */
export const hostKeyAlias = (vmId: string) => `banger-${vmId}`

/** Everything ssh needs to reach a VM as banger set it up; the argv is built from it (ssh-argv.ts). */
export class SshTarget extends Schema.Class<SshTarget>("SshTarget")({
  name: Schema.String,
  /** The guest's address on banger's network. */
  address: Schema.String,
  port: Schema.Int,
  /** banger's client private key (its public half is in the guest's authorized_keys). */
  identityFile: Schema.String,
  /** The VM's own known_hosts: one line, its host key under `hostKeyAlias`. */
  knownHostsFile: Schema.String,
  hostKeyAlias: Schema.String,
  /** False when asked for a stopped VM (`vm show`): the command works once it runs. */
  running: Schema.Boolean
}) {}

/** `--ssh-key FILE` as the CLI sends it: the daemon may not be able to read the user's file. */
export const SshKeyFile = Schema.Struct({ path: Schema.String, content: Schema.String })
export type SshKeyFile = typeof SshKeyFile.Type

/** A public key file is a few hundred bytes; anything this large was given by mistake. */
export const MAX_SSH_KEY_FILE = 64 * 1024

const KEY_TYPES = new Set([
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com"
])

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/

/** The key type written inside the blob itself (a uint32 length, then the name). */
const blobType = (data: string): string | undefined => {
  const blob = Buffer.from(data, "base64")
  if (blob.length < 4) return undefined
  const length = blob.readUInt32BE(0)
  return length > 0 && 4 + length <= blob.length ? blob.subarray(4, 4 + length).toString("latin1") : undefined
}

const checkLine = (line: string): Either.Either<string, string> => {
  const [type = "", data = "", ...comment] = line.split(/\s+/)
  if (!KEY_TYPES.has(type)) {
    return Either.left(`"${type.slice(0, 40)}" is not an ssh public key type (${[...KEY_TYPES].join(", ")})`)
  }
  if (!BASE64.test(data) || data.length % 4 !== 0) return Either.left("the key data is not base64")
  const inner = blobType(data)
  if (inner !== type) return Either.left(`the key data is not a ${type} key`)
  return Either.right([type, data, ...comment].join(" "))
}

/**
 * The authorized_keys lines of a public key file: each line not blank and not a `#` comment must be
 * `type base64 [comment]` with the type one ssh accepts and the base64 holding a key of that type.
 * Options before the type (`from="…"`) are refused: banger's keys grant plain access, nothing else.
 */
export const parsePublicKeys = (text: string): Either.Either<ReadonlyArray<string>, string> => {
  if (text.length > MAX_SSH_KEY_FILE) return Either.left(`larger than ${MAX_SSH_KEY_FILE / 1024} KiB`)
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) return Either.left("this is a private key: give its .pub")
  const lines: Array<string> = []
  const raw = text.split("\n")
  for (const [index, line] of raw.entries()) {
    const trimmed = line.replace(/\r$/, "").trim()
    if (trimmed === "" || trimmed.startsWith("#")) continue
    const checked = checkLine(trimmed)
    if (Either.isLeft(checked)) return Either.left(raw.length > 1 ? `line ${index + 1}: ${checked.left}` : checked.left)
    lines.push(checked.right)
  }
  return lines.length === 0 ? Either.left("holds no key") : Either.right(lines)
}

/** The VM's known_hosts: its host key, filed under its alias only. */
export const knownHostsContent = (alias: string, hostPublicKey: string) => {
  const [type, data] = hostPublicKey.trim().split(/\s+/)
  return `${alias} ${type} ${data}\n`
}

/** The guest's /root/.ssh/authorized_keys: banger's key first, then the user's, one per line. */
export const authorizedKeysContent = (lines: ReadonlyArray<string>) => lines.map((line) => `${line.trim()}\n`).join("")
