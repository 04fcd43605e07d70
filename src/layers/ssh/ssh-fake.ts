import { Effect } from "effect"
import type { SshShape } from "./ssh.js"

export interface SshFake {
  readonly ssh: SshShape
  /** Directories host keys were made for, in order. */
  readonly hostKeysMade: Array<string>
  /** Every banner probe: `host:port`. */
  readonly probes: Array<string>
}

/** A well-formed ed25519 public key line (the blob names its type), different for each seed. */
export const fakeEd25519 = (seed: number, comment: string) => {
  const type = Buffer.from("ssh-ed25519")
  const length = Buffer.alloc(4)
  length.writeUInt32BE(type.length)
  const keyLength = Buffer.alloc(4)
  keyLength.writeUInt32BE(32)
  const blob = Buffer.concat([length, type, keyLength, Buffer.alloc(32, seed)])
  return `ssh-ed25519 ${blob.toString("base64")} ${comment}`
}

/**
 * Keys with no ssh-keygen: the client key is always seed 1, host keys count up from 2. `banners`
 * answers each probe in turn (the last one repeats); by default an sshd answers at once.
 */
export const makeSshFake = (
  options: { readonly banners?: ReadonlyArray<string | undefined>; readonly clientKeyPath?: string } = {}
): SshFake => {
  const hostKeysMade: Array<string> = []
  const probes: Array<string> = []
  const banners = options.banners ?? ["SSH-2.0-OpenSSH_9.2p1 Debian-2"]
  return {
    hostKeysMade,
    probes,
    ssh: {
      clientKey: Effect.succeed({
        privateKeyPath: options.clientKeyPath ?? "/state/ssh/id_ed25519",
        publicKey: fakeEd25519(1, "banger")
      }),
      newHostKey: (dir, comment) =>
        Effect.sync(() => {
          hostKeysMade.push(dir)
          const seed = hostKeysMade.length + 1
          return {
            privateKey: new TextEncoder().encode(`fake private host key ${seed}\n`),
            publicKey: fakeEd25519(seed, comment)
          }
        }),
      banner: (host, port) =>
        Effect.sync(() => {
          probes.push(`${host}:${port}`)
          return banners[Math.min(probes.length, banners.length) - 1]
        })
    }
  }
}
