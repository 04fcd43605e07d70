import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import {
  choosePool,
  formatCidr,
  formatIpv4,
  kernelIpArg,
  macFor,
  netmask,
  parseCidr,
  parseIpv4,
  poolCapacity,
  tapName,
  vmNetworkAt
} from "../../src/layers/network/address.js"
import { BANGER_TAP } from "../../src/layers/network/network.js"
import { nftRuleset } from "../../src/layers/network/nft-ruleset.js"
import { chooseResolvers, resolvConf } from "../../src/layers/network/resolvers.js"
import { bootArgs } from "../../src/pipelines/vm/boot-args.js"
import { configHasIpAutoconfig, kernelConfigCandidates } from "../../src/pipelines/vm/kernel-ip-config.js"

const cidr = (text: string) => Either.getOrThrow(parseCidr(text))

describe("IPv4 pool arithmetic", () => {
  it("parses and formats addresses and pools, refusing what is not a network address", () => {
    expect(parseIpv4("172.30.0.1")).toBe(0xac1e0001)
    expect(formatIpv4(0xac1e0001)).toBe("172.30.0.1")
    expect(parseIpv4("256.0.0.1")).toBeUndefined()
    expect(parseIpv4("01.2.3.4")).toBeUndefined()
    expect(formatCidr(cidr("10.213.0.0/24"))).toBe("10.213.0.0/24")
    expect(poolCapacity(cidr("10.213.0.0/24"))).toBe(64)
    expect(poolCapacity(cidr("172.30.0.0/16"))).toBe(16384)
    expect(parseCidr("10.0.0.1/16")).toEqual(
      Either.left('"10.0.0.1/16" is not a network address (its host bits are set): did you mean 10.0.0.0/16?')
    )
    expect(Either.isLeft(parseCidr("10.0.0.0/31"))).toBe(true)
    expect(Either.isLeft(parseCidr("fd00::/64"))).toBe(true)
    expect(Either.isLeft(parseCidr("10.0.0.0"))).toBe(true)
  })

  it("gives each VM a /30: the tap holds .1, the guest .2 of it", () => {
    const network = vmNetworkAt("0123456789abcdef", cidr("10.213.0.0/24").base + 8)
    expect(network).toMatchObject({
      tap: "bg0123456789abc",
      hostAddress: "10.213.0.9",
      guestAddress: "10.213.0.10",
      prefixLength: 30
    })
    expect(netmask(30)).toBe("255.255.255.252")
    expect(kernelIpArg(network)).toBe("ip=10.213.0.10::10.213.0.9:255.255.255.252::eth0:off")
  })

  it("names taps bg + the id, at most 15 characters, and only such names count as banger's", () => {
    const tap = tapName("f00dfacecafebeef")
    expect(tap).toBe("bgf00dfacecafeb")
    expect(tap.length).toBeLessThanOrEqual(15)
    expect(BANGER_TAP.test(tap)).toBe(true)
    for (const other of ["bgp0", "bg0123", "eth0", "bg0123456789abcd", "BG0123456789abc"]) {
      expect(BANGER_TAP.test(other)).toBe(false)
    }
  })

  it("derives a stable, locally administered unicast MAC from the id", () => {
    const mac = macFor("0123456789abcdef")
    expect(mac).toMatch(/^02(:[0-9a-f]{2}){5}$/)
    expect(macFor("0123456789abcdef")).toBe(mac)
    expect(macFor("0123456789abcdee")).not.toBe(mac)
  })

  it("picks the first candidate pool no host route overlaps, ignoring the default route and banger's taps", () => {
    const routes = [
      { dst: "default", dev: "eth0" },
      { dst: "172.30.5.0/24", dev: "docker0" },
      { dst: "172.29.0.4/30", dev: "bg0123456789abc" },
      { dst: "192.0.2.0/24", dev: "eth0" }
    ]
    expect(formatCidr(choosePool(routes)!)).toBe("172.29.0.0/16")
    expect(formatCidr(choosePool([{ dst: "default" }])!)).toBe("172.30.0.0/16")
    // A host route (no prefix) inside a candidate rules it out too.
    expect(formatCidr(choosePool([{ dst: "172.30.9.9" }])!)).toBe("172.29.0.0/16")
    expect(choosePool([{ dst: "0.0.0.0/1" }, { dst: "128.0.0.0/1" }])).toBeUndefined()
  })
})

describe("nftables table", () => {
  it("masquerades and forwards only the pool's traffic, in banger's own table, loaded idempotently", () => {
    expect(nftRuleset(cidr("172.30.0.0/16"))).toBe(
      [
        "table inet banger",
        "delete table inet banger",
        "table inet banger {",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        "    ip saddr 172.30.0.0/16 ip daddr != 172.30.0.0/16 masquerade",
        "  }",
        "  chain forward {",
        "    type filter hook forward priority filter; policy accept;",
        "    ip saddr 172.30.0.0/16 accept",
        "    ip daddr 172.30.0.0/16 ct state established,related accept",
        "  }",
        "}",
        ""
      ].join("\n")
    )
  })
})

describe("guest resolvers", () => {
  it("uses the host's resolvers unless they are a loopback stub, then systemd-resolved's upstream list", () => {
    expect(chooseResolvers("nameserver 192.0.2.53\nsearch example\n", undefined)).toEqual(["192.0.2.53"])
    const stub = "# stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\n"
    const upstream = "nameserver 198.51.100.1\nnameserver 198.51.100.2\n"
    expect(chooseResolvers(stub, upstream)).toEqual(["198.51.100.1", "198.51.100.2"])
    expect(chooseResolvers("nameserver 127.0.0.1\nnameserver 203.0.113.9\n", upstream)).toEqual(["203.0.113.9"])
    expect(chooseResolvers(stub, undefined)).toEqual([])
    expect(chooseResolvers(undefined, undefined)).toEqual([])
    expect(resolvConf(["198.51.100.1"])).toBe("# Written by banger: the host's resolvers.\nnameserver 198.51.100.1\n")
  })
})

describe("kernel IP autoconfiguration", () => {
  it("reads CONFIG_IP_PNP from the kernel's config, looked for beside the kernel and in /boot", () => {
    expect(configHasIpAutoconfig("CONFIG_FOO=y\nCONFIG_IP_PNP=y\nCONFIG_IP_PNP_DHCP=y\n")).toBe(true)
    expect(configHasIpAutoconfig("# CONFIG_IP_PNP is not set\n")).toBe(false)
    expect(kernelConfigCandidates("/state/kernels/k/vmlinuz", "6.1.0-57-cloud-amd64")).toEqual([
      "/state/kernels/k/config",
      "/state/kernels/k/config-6.1.0-57-cloud-amd64",
      "/boot/config-6.1.0-57-cloud-amd64"
    ])
    expect(kernelConfigCandidates("/k/vmlinux", undefined)).toEqual(["/k/config"])
  })

  it("puts ip= on the command line before init=", () => {
    expect(
      bootArgs({ vmm: "qemu", init: "/.banger/init", ip: "ip=10.0.0.2::10.0.0.1:255.255.255.252::eth0:off" })
    ).toBe(
      "console=ttyS0 reboot=k panic=1 root=/dev/vda rw net.ifnames=0 ip=10.0.0.2::10.0.0.1:255.255.255.252::eth0:off init=/.banger/init"
    )
  })
})
