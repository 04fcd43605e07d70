/**
 * ssh set-up with the real tools: ssh-keygen makes banger's client key once (also when first uses
 * race) and a host key per VM; debugfs writes them, the sshd drop-in and root's authorized_keys
 * into a real ext4 with root's modes; ssh-keygen reads back what banger wrote.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { Effect, Either, Layer } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hostKeyAlias, parsePublicKeys, VM_HOST_KEY, VM_KNOWN_HOSTS } from "../../src/domain/ssh.js"
import { Ext4Tools } from "../../src/layers/ext4/ext4-tools.js"
import { GuestFs } from "../../src/layers/guest/guest-fs.js"
import { Ssh } from "../../src/layers/ssh/ssh.js"
import { StatePaths } from "../../src/layers/state/state-paths.js"
import { configureGuest } from "../../src/pipelines/vm/configure-guest.js"
import { findSshd, prepareGuestSsh, SSHD_CONFIG } from "../../src/pipelines/vm/guest-ssh.js"
import { inspectImage, readFileFromImage } from "../support/ext4-inspect.js"
import { type TreeSpec, writeTree } from "../support/ext4-tree.js"

let work: string
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-ssh-keys-"))
})
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))

const services = (state: string) =>
  Layer.mergeAll(Ssh.layer.pipe(Layer.provide(StatePaths.layer(state))), GuestFs.layer, Ext4Tools.layer).pipe(
    Layer.provideMerge(NodeContext.layer),
    Layer.provideMerge(StatePaths.layer(state))
  )
const run = <A, E>(
  state: string,
  effect: Effect.Effect<A, E, Ssh | GuestFs | Ext4Tools | StatePaths | NodeContext.NodeContext>
) => Effect.runPromise(Effect.provide(effect, services(state)))

const keygen = (...args: Array<string>) => execFileSync("ssh-keygen", args, { encoding: "utf8" })
const modeOf = (file: string) => fs.statSync(file).mode & 0o7777
/** Type and key data: `ssh-keygen -y` prints the comment too on newer OpenSSH, not on older. */
const keyOf = (line: string) => line.trim().split(/\s+/).slice(0, 2).join(" ")

describe("banger's client key (real ssh-keygen)", () => {
  it("is made once under <state>/ssh: dir 0700, private key 0600, a matching pair", async () => {
    const state = path.join(work, "once")
    const first = await run(
      state,
      Effect.flatMap(Ssh, (ssh) => ssh.clientKey)
    )
    expect(first.privateKeyPath).toBe(path.join(state, "ssh", "id_ed25519"))
    expect(modeOf(path.join(state, "ssh"))).toBe(0o700)
    expect(modeOf(first.privateKeyPath)).toBe(0o600)
    expect(first.publicKey).toMatch(/^ssh-ed25519 [A-Za-z0-9+/]+=* banger$/)
    expect(keyOf(keygen("-y", "-f", first.privateKeyPath))).toBe(keyOf(first.publicKey))
    const again = await run(
      state,
      Effect.flatMap(Ssh, (ssh) => ssh.clientKey)
    )
    expect(again).toEqual(first)
    expect(fs.readdirSync(path.join(state, "tmp"))).toEqual([])
  })

  it("two daemons' first uses racing end with one pair that everyone uses, and no temp dirs", async () => {
    const state = path.join(work, "race")
    // Separate service instances, as two daemons (or two creates) would have, started together.
    const keys = await Promise.all(
      Array.from({ length: 6 }, () =>
        run(
          state,
          Effect.flatMap(Ssh, (ssh) => ssh.clientKey)
        )
      )
    )
    expect(new Set(keys.map((key) => key.publicKey)).size).toBe(1)
    expect(fs.readdirSync(path.join(state, "ssh")).sort()).toEqual(["id_ed25519", "id_ed25519.pub"])
    expect(keyOf(keygen("-y", "-f", keys[0]!.privateKeyPath))).toBe(keyOf(keys[0]!.publicKey))
    expect(fs.readdirSync(path.join(state, "tmp"))).toEqual([])
  })

  it("a <state>/ssh without the key is a typed error, not a silent new key", async () => {
    const state = path.join(work, "broken")
    fs.mkdirSync(path.join(state, "ssh"), { recursive: true })
    fs.writeFileSync(path.join(state, "ssh", "stray"), "")
    const error = await run(state, Effect.flip(Effect.flatMap(Ssh, (ssh) => ssh.clientKey)))
    expect(error._tag).toBe("SshKeygenError")
    expect(error.message).toContain("exists without it")
  })
})

describe("public key files ssh-keygen makes", () => {
  it("are accepted for every key type, their private halves refused", () => {
    for (const [type, bits] of [
      ["ed25519", []],
      ["rsa", ["-b", "2048"]],
      ["ecdsa", ["-b", "384"]]
    ] as const) {
      const file = path.join(work, `user-${type}`)
      keygen("-q", "-t", type, ...bits, "-N", "", "-C", `me@${type}`, "-f", file)
      const pub = fs.readFileSync(`${file}.pub`, "utf8")
      expect(parsePublicKeys(pub)).toEqual(Either.right([pub.trim()]))
      expect(parsePublicKeys(fs.readFileSync(file, "utf8"))).toEqual(
        Either.left("this is a private key: give its .pub")
      )
    }
  })
})

const image: ReadonlyArray<TreeSpec> = [
  { path: "usr", type: "directory", mode: 0o755 },
  { path: "usr/sbin", type: "directory", mode: 0o755 },
  { path: "usr/sbin/sshd", type: "file", mode: 0o755, content: "ELF sshd" },
  { path: "sbin", type: "symlink", mode: 0o777, target: "usr/sbin" },
  { path: "etc", type: "directory", mode: 0o755 },
  { path: "etc/passwd", type: "file", mode: 0o644, content: "root:x:0:0:root:/root:/bin/bash\n" },
  { path: "etc/ssh", type: "directory", mode: 0o755 },
  { path: "etc/ssh/sshd_config", type: "file", mode: 0o644, content: "Include /etc/ssh/sshd_config.d/*.conf\n" },
  // What Debian's openssh-server leaves: a host key made when the image was built, shared by every VM.
  { path: "etc/ssh/ssh_host_ed25519_key", type: "file", mode: 0o600, content: "image build's key\n" },
  { path: "root", type: "directory", mode: 0o700 }
]

describe("the guest's ssh files (real debugfs on a real ext4)", () => {
  const makeVm = async (state: string, label: string, userKeys: ReadonlyArray<string> = []) => {
    const dir = path.join(work, label)
    const tree = writeTree(path.join(dir, "tree"), image)
    const disk = path.join(dir, "disk.ext4")
    const id = `${label}-id`
    await run(
      state,
      Effect.gen(function* () {
        yield* Effect.flatMap(Ext4Tools, (tools) => tools.build({ tree, output: disk, sizeBytes: 32 * 2 ** 20 }))
        const ssh = yield* prepareGuestSsh({ dir, id, name: label, userKeys })
        yield* configureGuest({ disk, name: label, config: {}, ssh })
      })
    )
    return { dir, disk, id }
  }
  const entries = (disk: string) =>
    Effect.runPromise(Effect.provide(inspectImage(disk), NodeContext.layer)).then(
      (list) => new Map(list.map((entry) => [entry.path, entry]))
    )
  const read = (disk: string, file: string) =>
    Effect.runPromise(Effect.provide(readFileFromImage(disk, file), NodeContext.layer))

  it("land with root's modes, match the VM's known_hosts, and differ from the next VM's", async () => {
    const state = path.join(work, "guest-state")
    const userKey = fs.readFileSync(path.join(work, "user-ed25519.pub"), "utf8").trim()
    const one = await makeVm(state, "vm-one", [userKey])
    const two = await makeVm(state, "vm-two")

    const inside = await entries(one.disk)
    const owned = (p: string) => {
      const entry = inside.get(p)!
      return [entry.type, entry.mode, entry.uid, entry.gid]
    }
    expect(owned("etc/ssh/ssh_host_ed25519_key")).toEqual(["file", 0o600, 0, 0])
    expect(owned("etc/ssh/ssh_host_ed25519_key.pub")).toEqual(["file", 0o644, 0, 0])
    expect(owned("etc/ssh/sshd_config.d/00-banger.conf")).toEqual(["file", 0o644, 0, 0])
    expect(owned("root/.ssh")).toEqual(["directory", 0o700, 0, 0])
    expect(owned("root/.ssh/authorized_keys")).toEqual(["file", 0o600, 0, 0])
    expect((await read(one.disk, "etc/ssh/sshd_config.d/00-banger.conf")).toString()).toBe(SSHD_CONFIG)

    // The guest's private host key is the one whose public half banger filed for this VM.
    const guestKey = path.join(work, "guest-host-key")
    fs.writeFileSync(guestKey, await read(one.disk, "etc/ssh/ssh_host_ed25519_key"), { mode: 0o600 })
    const derived = keyOf(keygen("-y", "-f", guestKey))
    expect((await read(one.disk, "etc/ssh/ssh_host_ed25519_key.pub")).toString()).toBe(`${derived} root@vm-one\n`)
    expect(fs.readFileSync(path.join(one.dir, `${VM_HOST_KEY}.pub`), "utf8").trim()).toBe(`${derived} root@vm-one`)
    const knownHosts = path.join(one.dir, VM_KNOWN_HOSTS)
    expect(fs.readFileSync(knownHosts, "utf8")).toBe(`${hostKeyAlias(one.id)} ${derived}\n`)
    // ssh's own tooling finds it under the alias, and nothing under an address.
    expect(keygen("-F", hostKeyAlias(one.id), "-f", knownHosts)).toContain(derived)
    expect(() => keygen("-F", "10.200.0.2", "-f", knownHosts)).toThrow()

    const client = fs.readFileSync(path.join(state, "ssh", "id_ed25519.pub"), "utf8").trim()
    expect((await read(one.disk, "root/.ssh/authorized_keys")).toString()).toBe(`${client}\n${userKey}\n`)
    expect((await read(two.disk, "root/.ssh/authorized_keys")).toString()).toBe(`${client}\n`)

    const otherKey = fs.readFileSync(path.join(two.dir, VM_KNOWN_HOSTS), "utf8").split(" ").slice(1).join(" ")
    expect(otherKey.trim()).not.toBe(derived)
    execFileSync("e2fsck", ["-fn", one.disk], { stdio: "pipe" })
  })

  it("findSshd resolves sshd through the image's own symlinks, and finds none where there is none", async () => {
    const state = path.join(work, "find-state")
    const { disk } = await makeVm(state, "vm-find")
    expect(await run(state, findSshd(disk))).toBe("/usr/sbin/sshd")
    const bare = path.join(work, "bare")
    const tree = writeTree(path.join(bare, "tree"), [{ path: "etc", type: "directory", mode: 0o755 }])
    const bareDisk = path.join(bare, "disk.ext4")
    await run(
      state,
      Effect.flatMap(Ext4Tools, (tools) => tools.build({ tree, output: bareDisk, sizeBytes: 16 * 2 ** 20 }))
    )
    expect(await run(state, findSshd(bareDisk))).toBeUndefined()
  })
})
