import { Effect } from "effect"
import { HostProbe } from "../../layers/host/host-probe.js"
import { firstLine, ok, warn } from "./result.js"

export const TUN_DEVICE = "/dev/net/tun"

/** Where the kernel exposes a sysctl: `net.ipv4.ip_forward` → `/proc/sys/net/ipv4/ip_forward`. */
export const sysctlFile = (name: string) => `/proc/sys/${name.replaceAll(".", "/")}`

/** VM networking makes a tap device per VM through /dev/net/tun. */
export const checkTun = Effect.gen(function* () {
  const host = yield* HostProbe
  const device = yield* host.stat(TUN_DEVICE)
  if (device === undefined || device.kind !== "character-device") {
    return warn(
      "tun",
      `${TUN_DEVICE} ${device === undefined ? "does not exist" : "is not a character device"}: VMs get no network`,
      "modprobe tun (in a container: pass the host's /dev/net/tun in)"
    )
  }
  const opened = yield* host.open(TUN_DEVICE, "read-write")
  if (opened._tag === "Denied") {
    return warn(
      "tun",
      `${TUN_DEVICE} cannot be opened read-write (${opened.code}): VMs get no network`,
      `chmod 0666 ${TUN_DEVICE}`
    )
  }
  return ok("tun", `${TUN_DEVICE} opens read-write`)
})

const IP_FORWARD = "net.ipv4.ip_forward"

/**
 * VMs reach beyond the host only when the host forwards their packets. The daemon turns it on
 * while a VM with a network runs and puts it back after, so off is fine when none runs.
 */
export const checkIpForward = Effect.gen(function* () {
  const value = (yield* (yield* HostProbe).readText(sysctlFile(IP_FORWARD)))?.trim()
  const fix = `sysctl -w ${IP_FORWARD}=1 (and keep it: echo ${IP_FORWARD}=1 > /etc/sysctl.d/90-banger.conf)`
  if (value === undefined)
    return warn(IP_FORWARD, `cannot read ${sysctlFile(IP_FORWARD)}: VMs may not reach the network`, fix)
  if (value !== "1") return ok(IP_FORWARD, `is ${value}: the daemon turns it on while VMs with a network run`)
  return ok(IP_FORWARD, "is 1")
})

export const NFT_TABLE_CHECK = "nft-table"

/** banger's nftables table (`inet banger`): there while VMs with a network run, gone after the last. */
export const checkNftTable = Effect.gen(function* () {
  const host = yield* HostProbe
  const nft = yield* host.which("nft")
  if (nft === undefined) return ok(NFT_TABLE_CHECK, "not checked: no nft (see the nft check)")
  const listed = yield* host.run(nft, ["-j", "list", "tables"])
  if (listed.exitCode !== 0)
    return ok(NFT_TABLE_CHECK, `cannot list tables as this user (${firstLine(listed.output)}): the daemon's user can`)
  let tables: ReadonlyArray<{ table?: { family?: string; name?: string } }>
  try {
    tables = (JSON.parse(listed.output) as { nftables?: typeof tables }).nftables ?? []
  } catch {
    return warn(
      NFT_TABLE_CHECK,
      `nft -j list tables printed no JSON: ${firstLine(listed.output)}`,
      "apt-get install nftables"
    )
  }
  const present = tables.some((item) => item.table?.family === "inet" && item.table.name === "banger")
  return ok(
    NFT_TABLE_CHECK,
    present
      ? "inet banger is loaded: VMs' outbound traffic is masqueraded"
      : "inet banger is not loaded (the daemon loads it when a VM with a network starts)"
  )
})
