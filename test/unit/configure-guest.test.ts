/** configure-guest's decisions on an in-memory image (GuestFs.layerTest); the real path is in guest-boot.test.ts. */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { GuestFs, type GuestFsFake, makeGuestFsFake } from "../../src/layers/guest/guest-fs.js"
import { vmNetworkAt } from "../../src/layers/network/address.js"
import { type ConfigureGuestOptions, configureGuest } from "../../src/pipelines/vm/configure-guest.js"
import { IFUPDOWN_FILE, NETWORKD_FILE } from "../../src/pipelines/vm/guest-network.js"

let work: string
let busybox: string
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-configure-unit-"))
  busybox = path.join(work, "busybox")
  fs.writeFileSync(busybox, "static busybox")
})
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))

const configure = (fake: GuestFsFake, options: Partial<ConfigureGuestOptions> = {}) =>
  Effect.runPromise(
    Effect.either(
      configureGuest({ disk: "disk.ext4", name: "vm1", config: {}, busybox, ...options }).pipe(
        Effect.provide(Layer.merge(GuestFs.layerTest(fake), NodeContext.layer))
      )
    )
  )
const text = (fake: GuestFsFake, p: string) => new TextDecoder().decode(fake.nodes.get(p)?.content)

describe("configureGuest", () => {
  it("installs banger's init in an image without /sbin/init, in one batch, modules copied when missing", async () => {
    const fake = makeGuestFsFake({ "/bin/app": "x", "/etc/passwd": "app:x:100:200::/home/app:/bin/sh\n" })
    const result = await configure(fake, {
      config: { entrypoint: ["/bin/app"], cmd: ["--serve"], user: "app", workingDir: "/srv" },
      modules: { version: "6.1.0-test", dir: "/host/modules" }
    })
    expect(result).toEqual(
      expect.objectContaining({
        right: {
          init: { _tag: "BuiltinInit" },
          kernelArgs: ["init=/.banger/init"],
          modulesCopied: true,
          networkSetup: "none"
        }
      })
    )
    expect(fake.applied).toHaveLength(2) // the batch, then copyIn's mkdir -p
    expect(fake.copies).toEqual([{ hostDir: "/host/modules", path: "/lib/modules/6.1.0-test" }])
    expect(text(fake, "/.banger/busybox")).toBe("static busybox")
    expect(fake.nodes.get("/.banger/init")?.mode).toBe(0o755)
    const config = text(fake, "/.banger/config")
    expect(config).toContain("BANGER_NAME='vm1'")
    expect(config).toContain("BANGER_WORKDIR='/srv'")
    expect(config).toContain("'nsenter' '-S' '100' '-G' '200'")
    expect(config).toContain("'HOME=/home/app' '/bin/app' '--serve'")
    for (const dir of ["/proc", "/sys", "/dev", "/run", "/tmp", "/srv"])
      expect(fake.nodes.get(dir)?.kind).toBe("directory")
    expect(fake.nodes.get("/tmp")?.mode).toBe(0o1777)
    expect(text(fake, "/etc/hostname")).toBe("vm1\n")
    expect(fake.nodes.has("/etc/machine-id")).toBe(false)
  })

  it("leaves modules alone when the image has them", async () => {
    const fake = makeGuestFsFake({ "/usr/lib/modules/6.1.0-test/modules.dep": "" }, { "/lib": "usr/lib" })
    const result = await configure(fake, { modules: { version: "6.1.0-test", dir: "/host/modules" } })
    expect(result._tag === "Right" && result.right.modulesCopied).toBe(false)
    expect(fake.copies).toEqual([])
  })

  it("keeps a systemd image's init: empty machine-id, the ready unit enabled, no /.banger", async () => {
    const fake = makeGuestFsFake(
      { "/usr/lib/systemd/systemd": "ELF", "/etc/machine-id": "abc\n", "/etc/hostname": "build-host\n" },
      { "/sbin": "usr/sbin", "/lib": "usr/lib", "/usr/sbin/init": "../lib/systemd/systemd" }
    )
    const result = await configure(fake, { name: "web%1" })
    expect(result).toEqual(
      expect.objectContaining({
        right: {
          init: { _tag: "ImageInit", systemd: true },
          kernelArgs: [],
          modulesCopied: false,
          networkSetup: "none"
        }
      })
    )
    expect(text(fake, "/etc/machine-id")).toBe("")
    expect(text(fake, "/etc/hostname")).toBe("web%1\n")
    expect(text(fake, "/etc/systemd/system/banger-ready.service")).toContain(
      'ExecStart=/bin/echo "banger: web%%1 ready"'
    )
    expect(fake.nodes.get("/etc/systemd/system/multi-user.target.wants/banger-ready.service")?.target).toBe(
      "../banger-ready.service"
    )
    expect([...fake.nodes.keys()].some((p) => p.startsWith("/.banger"))).toBe(false)
    // Its reads were asked for once, up front: what it looks up and the files it may read.
    expect(fake.readAheads).toHaveLength(1)
    expect(fake.readAheads[0]?.paths).toEqual(
      expect.arrayContaining([
        "/sbin/init",
        "/etc/hostname",
        "/etc/machine-id",
        `${"/etc/systemd/system"}/banger-ready.service`
      ])
    )
    expect(fake.readAheads[0]?.files).toEqual(expect.arrayContaining(["/etc/passwd", "/etc/group", "/etc/inittab"]))
  })

  it("takes the reads made alongside the work disk's clone instead of reading ahead again", async () => {
    const fake = makeGuestFsFake({ "/bin/app": "x" })
    const result = await configure(fake, { reads: { paths: { paths: ["/sbin/init"] } } })
    expect(result._tag).toBe("Right")
    expect(fake.readAheads).toEqual([])
  })

  it("fails before writing anything for a user the image does not have, or a missing busybox", async () => {
    const noUser = makeGuestFsFake({ "/bin/app": "x" })
    const user = await configure(noUser, { config: { cmd: ["/bin/app"], user: "ghost" } })
    expect(user._tag === "Left" && user.left.message).toContain('user "ghost" is not in it')
    expect(noUser.applied).toEqual([])

    const noBusybox = makeGuestFsFake({ "/bin/app": "x" })
    const missing = await configure(noBusybox, { busybox: path.join(work, "nope") })
    expect(missing._tag === "Left" && missing.left._tag).toBe("FilesystemError")
    expect(missing._tag === "Left" && missing.left.message).toContain("busybox-static")
    expect(noBusybox.applied).toEqual([])
  })

  describe("the guest's network", () => {
    // 10.213.0.8/30: the tap holds .9, the guest .10.
    const network = vmNetworkAt("0123456789abcdef", 0x0ad50008)
    const options = (kernelConfigures = false) => ({
      network: { network, kernelConfigures, resolvers: ["192.0.2.53", "192.0.2.54"] }
    })
    const setupOf = (result: Awaited<ReturnType<typeof configure>>) =>
      result._tag === "Right" ? result.right.networkSetup : result.left.message

    it("banger's init brings eth0 up from its config; resolv.conf gets the host's resolvers", async () => {
      const fake = makeGuestFsFake({ "/bin/app": "x" })
      expect(setupOf(await configure(fake, { ...options(), config: { cmd: ["/bin/app"] } }))).toBe("builtin-init")
      const config = text(fake, "/.banger/config")
      expect(config).toContain("BANGER_NET_ADDRESS='10.213.0.10/30'")
      expect(config).toContain("BANGER_NET_GATEWAY='10.213.0.9'")
      expect(text(fake, "/etc/resolv.conf")).toBe(
        "# Written by banger: the host's resolvers.\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n"
      )
      expect(fake.applied).toHaveLength(1)
    })

    it("a kernel with IP autoconfiguration sets eth0 itself: banger's init leaves it alone", async () => {
      const fake = makeGuestFsFake({ "/bin/app": "x" })
      expect(setupOf(await configure(fake, { ...options(true), config: { cmd: ["/bin/app"] } }))).toBe("kernel")
      expect(text(fake, "/.banger/config")).not.toContain("BANGER_NET_ADDRESS")
      expect(text(fake, "/etc/resolv.conf")).toContain("nameserver 192.0.2.53")
    })

    it("systemd with networkd: a .network file matched by MAC, networkd enabled; a resolv.conf symlink is the image's", async () => {
      const fake = makeGuestFsFake(
        {
          "/usr/lib/systemd/systemd": "ELF",
          "/usr/lib/systemd/system/systemd-networkd.service": "[Unit]",
          "/run/systemd/resolve/stub-resolv.conf": "nameserver 127.0.0.53\n"
        },
        {
          "/sbin": "usr/sbin",
          "/lib": "usr/lib",
          "/usr/sbin/init": "../lib/systemd/systemd",
          "/etc/resolv.conf": "../run/systemd/resolve/stub-resolv.conf"
        }
      )
      expect(setupOf(await configure(fake, options()))).toBe("systemd-networkd")
      expect(text(fake, NETWORKD_FILE)).toBe(
        [
          "# Written by banger: the VM's address on its tap.",
          "[Match]",
          `MACAddress=${network.mac}`,
          "",
          "[Network]",
          "Address=10.213.0.10/30",
          "Gateway=10.213.0.9",
          "DNS=192.0.2.53",
          "DNS=192.0.2.54",
          ""
        ].join("\n")
      )
      expect(fake.nodes.get("/etc/systemd/system/multi-user.target.wants/systemd-networkd.service")?.target).toBe(
        "/lib/systemd/system/systemd-networkd.service"
      )
      expect(text(fake, "/run/systemd/resolve/stub-resolv.conf")).toBe("nameserver 127.0.0.53\n")
    })

    it("an image with ifupdown gets an interfaces.d stanza, sourced if its interfaces file did not", async () => {
      const fake = makeGuestFsFake({
        "/sbin/init": "ELF",
        "/etc/inittab": "id:2:initdefault:\n",
        "/etc/network/interfaces": "auto lo\niface lo inet loopback\n"
      })
      expect(setupOf(await configure(fake, options()))).toBe("ifupdown")
      expect(text(fake, IFUPDOWN_FILE)).toContain(
        "iface eth0 inet static\n  address 10.213.0.10\n  netmask 255.255.255.252\n  gateway 10.213.0.9\n"
      )
      expect(text(fake, "/etc/network/interfaces")).toBe(
        "auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n"
      )
    })
  })
})
