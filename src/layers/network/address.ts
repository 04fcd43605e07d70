/**
 * banger's IPv4 arithmetic: the pool, the /30 each VM gets out of it, and the names and MAC that
 * follow from a VM's id. Pure, so every rule here is unit-tested.
 */
import { createHash } from "node:crypto"
import { Either } from "effect"
import { VmNetwork } from "../../domain/network.js"

export interface Ipv4Cidr {
  /** The network address as an unsigned 32-bit integer. */
  readonly base: number
  readonly prefix: number
}

/** Each VM gets a /30: network, host side (the tap), guest side, broadcast. */
export const VM_PREFIX = 30
const SLOT_SIZE = 2 ** (32 - VM_PREFIX)

/** Tried in order when no `--subnet` is given: the first that no host route overlaps is the pool. */
export const POOL_CANDIDATES = ["172.30.0.0/16", "172.29.0.0/16", "10.213.0.0/16", "10.123.0.0/16", "192.168.213.0/24"]

/** Every tap banger makes starts with this: anything named so is banger's to remove. */
export const TAP_PREFIX = "bg"
/** IFNAMSIZ - 1. */
const IFNAME_MAX = 15

export const parseIpv4 = (text: string): number | undefined => {
  const parts = text.split(".")
  if (parts.length !== 4 || !parts.every((part) => /^(0|[1-9]\d{0,2})$/.test(part) && Number(part) <= 255))
    return undefined
  return parts.reduce((value, part) => value * 256 + Number(part), 0)
}

export const formatIpv4 = (value: number): string =>
  [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".")

export const formatCidr = (cidr: Ipv4Cidr) => `${formatIpv4(cidr.base)}/${cidr.prefix}`

/** A pool must hold at least one /30 and be written as its network address (10.1.0.0/16, not 10.1.2.3/16). */
export const parseCidr = (text: string): Either.Either<Ipv4Cidr, string> => {
  const match = /^([\d.]+)\/(\d{1,2})$/.exec(text.trim())
  const base = match ? parseIpv4(match[1]!) : undefined
  const prefix = match ? Number(match[2]) : Number.NaN
  if (base === undefined || !(prefix >= 0 && prefix <= 32))
    return Either.left(`"${text}" is not an IPv4 CIDR such as 172.30.0.0/16`)
  if (prefix > VM_PREFIX) return Either.left(`"${text}" is smaller than one /${VM_PREFIX}, the block each VM gets`)
  if (base % 2 ** (32 - prefix) !== 0)
    return Either.left(
      `"${text}" is not a network address (its host bits are set): did you mean ${formatIpv4(base - (base % 2 ** (32 - prefix)))}/${prefix}?`
    )
  return Either.right({ base, prefix })
}

const size = (cidr: Ipv4Cidr) => 2 ** (32 - cidr.prefix)

export const overlaps = (a: Ipv4Cidr, b: Ipv4Cidr) => a.base < b.base + size(b) && b.base < a.base + size(a)

/** The /30 blocks of a pool, as [first block's base, end) in steps of four addresses. */
export const poolRange = (pool: Ipv4Cidr) => ({ start: pool.base, end: pool.base + size(pool), step: SLOT_SIZE })

/** How many VMs a pool holds. */
export const poolCapacity = (pool: Ipv4Cidr) => size(pool) / SLOT_SIZE

/** A route as `ip -j route` prints it; `dst` is `default`, an address, or a CIDR. */
export interface HostRoute {
  readonly dst: string
  readonly dev?: string | undefined
}

const routeCidr = (dst: string): Ipv4Cidr | undefined => {
  const [address, prefix] = dst.split("/")
  const base = parseIpv4(address ?? "")
  if (base === undefined) return undefined
  return { base, prefix: prefix === undefined ? 32 : Number(prefix) }
}

/**
 * The first candidate no route of the host overlaps. The default route overlaps everything and
 * says nothing about what is in use, and banger's own taps' routes lie inside its pool: both are
 * ignored, so a daemon restarted under running VMs picks the pool they came from.
 */
export const choosePool = (
  routes: ReadonlyArray<HostRoute>,
  candidates: ReadonlyArray<string> = POOL_CANDIDATES
): Ipv4Cidr | undefined => {
  const used = routes.flatMap((route) => {
    const cidr = route.dst === "default" || route.dev?.startsWith(TAP_PREFIX) ? undefined : routeCidr(route.dst)
    return cidr === undefined ? [] : [cidr]
  })
  return candidates
    .map((candidate) => Either.getOrThrow(parseCidr(candidate)))
    .find((candidate) => !used.some((route) => overlaps(candidate, route)))
}

/** `bg` + the start of the VM id: unique per VM, at most 15 characters. */
export const tapName = (vmId: string) =>
  `${TAP_PREFIX}${vmId.toLowerCase().replace(/[^a-z0-9]/g, "")}`.slice(0, IFNAME_MAX)

/** Locally administered, unicast (`02:`), the rest from a hash of the id: the same on every boot. */
export const macFor = (vmId: string) => {
  const bytes = createHash("sha256").update(vmId).digest().subarray(0, 5)
  return ["02", ...[...bytes].map((byte) => byte.toString(16).padStart(2, "0"))].join(":")
}

/** The VM's place on the network, from the base of its /30. */
export const vmNetworkAt = (vmId: string, base: number): VmNetwork =>
  new VmNetwork({
    tap: tapName(vmId),
    mac: macFor(vmId),
    hostAddress: formatIpv4(base + 1),
    guestAddress: formatIpv4(base + 2),
    prefixLength: VM_PREFIX
  })

export const netmask = (prefix: number) => formatIpv4(2 ** 32 - 2 ** (32 - prefix))

/** The kernel's IP autoconfiguration argument: static, no DHCP, on eth0. */
export const kernelIpArg = (network: VmNetwork) =>
  `ip=${network.guestAddress}::${network.hostAddress}:${netmask(network.prefixLength)}::eth0:off`
