import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Context, Effect, Layer } from "effect"
import { NetworkError, NetworkUnavailable } from "../../domain/errors.js"
import type { VmNetwork } from "../../domain/network.js"
import { StatePaths } from "../state/state-paths.js"
import { choosePool, formatCidr, type HostRoute, type Ipv4Cidr, POOL_CANDIDATES, TAP_PREFIX } from "./address.js"
import { runChecked, runCommand } from "./host-commands.js"
import { makeNetworkFake, type NetworkFake } from "./network-fake.js"
import { NFT_FAMILY, NFT_TABLE, nftRuleset } from "./nft-ruleset.js"
import { chooseResolvers, ETC_RESOLV_CONF, RESOLVED_UPSTREAM } from "./resolvers.js"

/** Who may open a tap besides root: for a VMM running as another user (e.g. under the jailer). */
export interface TapOwner {
  readonly uid: number
  readonly gid: number
}

/**
 * The host side of VM networking: the address pool, a tap per VM, and outbound access (IPv4
 * forwarding plus banger's own nftables table), on while any VM that has a network runs.
 */
export interface NetworkShape {
  /** The pool new VMs get their /30 from: `--subnet`, else the first candidate no host route overlaps. */
  readonly pool: Effect.Effect<Ipv4Cidr, NetworkError>
  /** Fails when this process cannot make taps: no CAP_NET_ADMIN, or no /dev/net/tun. */
  readonly checkAvailable: Effect.Effect<void, NetworkUnavailable>
  /**
   * The VM's tap, up with the host address (idempotent: a host reboot loses taps), and outbound
   * access on: the VM counts as a user of it until `detach`.
   */
  readonly attach: (vmId: string, network: VmNetwork, owner?: TapOwner) => Effect.Effect<void, NetworkError>
  /** The tap removed (if there); with the last user gone, the table goes and forwarding is put back. */
  readonly detach: (vmId: string, network: VmNetwork) => Effect.Effect<void, NetworkError>
  /** Taps named as banger names them (`bg` + 13 hex digits, tun/tap kind): nothing else is listed. */
  readonly listTaps: Effect.Effect<ReadonlyArray<string>, NetworkError>
  readonly removeTap: (tap: string) => Effect.Effect<void, NetworkError>
  /**
   * At daemon start: these VMs (still running) are the users of outbound access, which is on if
   * there are any; with none, the table is removed and forwarding put back as it was.
   */
  readonly adopt: (vmIds: ReadonlyArray<string>) => Effect.Effect<void, NetworkError>
  /** The host's upstream resolvers, for the guest's /etc/resolv.conf. */
  readonly resolvers: Effect.Effect<ReadonlyArray<string>>
}

export interface NetworkConfig {
  /** `banger daemon --subnet`. */
  readonly subnet?: Ipv4Cidr | undefined
  /** Where the forwarding value banger found is kept while it has forwarding on. */
  readonly hostStateDir: string
}

const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
const FORWARD_BEFORE = "ip-forward-before"
/** CAP_NET_ADMIN's bit in /proc/self/status CapEff. */
const CAP_NET_ADMIN = 12n
const TUN = "/dev/net/tun"
/** What tapName makes of a VM id (16 hex digits): only these are ever removed as leftovers. */
export const BANGER_TAP = new RegExp(`^${TAP_PREFIX}[0-9a-f]{13}$`)

const readText = (file: string) => {
  try {
    return fs.readFileSync(file, "utf8")
  } catch {
    return undefined
  }
}

const hasNetAdmin = () => {
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readText("/proc/self/status") ?? "")?.[1]
  return capEff !== undefined && ((BigInt(`0x${capEff}`) >> CAP_NET_ADMIN) & 1n) === 1n
}

const fsFailure = (what: string) => (error: unknown) =>
  new NetworkError({ reason: `${what}: ${error instanceof Error ? error.message : String(error)}` })

export const makeNetwork = (config: NetworkConfig): Effect.Effect<NetworkShape> =>
  Effect.gen(function* () {
    // One change to taps' users and the table at a time: a VM starting while the last one stops
    // must not find its table deleted under it.
    const lock = yield* Effect.makeSemaphore(1)
    const users = new Set<string>()
    const forwardBefore = path.join(config.hostStateDir, FORWARD_BEFORE)

    const pool = yield* Effect.cached(
      config.subnet !== undefined
        ? Effect.succeed(config.subnet)
        : Effect.gen(function* () {
            const routes = JSON.parse((yield* runChecked("ip", ["-j", "-4", "route", "show", "table", "all"])) || "[]")
            const chosen = choosePool(routes as ReadonlyArray<HostRoute>)
            if (chosen === undefined)
              return yield* new NetworkError({
                reason: `every default pool (${POOL_CANDIDATES.join(", ")}) overlaps a route of this host: choose one with banger daemon --subnet CIDR`
              })
            return chosen
          })
    )

    const tapExists = (tap: string) =>
      Effect.map(runCommand("ip", ["link", "show", "dev", tap]), (out) => out.code === 0)

    const ensureTap = (network: VmNetwork, owner: TapOwner | undefined) =>
      Effect.gen(function* () {
        if (!(yield* tapExists(network.tap))) {
          const ownerArgs = owner === undefined ? [] : ["user", String(owner.uid), "group", String(owner.gid)]
          yield* runChecked("ip", ["tuntap", "add", "dev", network.tap, "mode", "tap", ...ownerArgs])
        }
        const address = `${network.hostAddress}/${network.prefixLength}`
        yield* runChecked("ip", ["address", "replace", address, "dev", network.tap])
        yield* runChecked("ip", ["link", "set", "dev", network.tap, "up"])
      })

    const removeTap = (tap: string) =>
      Effect.gen(function* () {
        if (!(yield* tapExists(tap))) return
        yield* runChecked("ip", ["link", "delete", "dev", tap])
      })

    // No nft at all means no table of ours either.
    const tableExists = Effect.map(Effect.either(runCommand("nft", ["-j", "list", "tables"])), (result) => {
      if (result._tag === "Left") return false
      const out = result.right
      if (out.code !== 0) return false
      const parsed = JSON.parse(out.stdout || "{}") as {
        nftables?: ReadonlyArray<{ table?: { family: string; name: string } }>
      }
      return (parsed.nftables ?? []).some((item) => item.table?.family === NFT_FAMILY && item.table.name === NFT_TABLE)
    })

    const enableOutbound = Effect.gen(function* () {
      const cidr = yield* pool
      const file = path.join(os.tmpdir(), `banger-nft-${process.pid}-${Date.now()}.nft`)
      yield* Effect.acquireUseRelease(
        Effect.try({ try: () => fs.writeFileSync(file, nftRuleset(cidr), { mode: 0o600 }), catch: fsFailure(file) }),
        () => runChecked("nft", ["-f", file]),
        () => Effect.sync(() => fs.rmSync(file, { force: true }))
      )
      const current = readText(IP_FORWARD)?.trim()
      if (current === "1") return
      // Remember what was there (once: a daemon restarted with forwarding on keeps the first value).
      if (!fs.existsSync(forwardBefore)) {
        yield* Effect.try({
          try: () => {
            fs.mkdirSync(config.hostStateDir, { recursive: true })
            fs.writeFileSync(forwardBefore, `${current ?? "0"}\n`)
          },
          catch: fsFailure(forwardBefore)
        })
      }
      yield* Effect.try({ try: () => fs.writeFileSync(IP_FORWARD, "1\n"), catch: fsFailure(IP_FORWARD) })
      yield* Effect.logInfo(
        `outbound access on for ${formatCidr(cidr)}: nftables table ${NFT_FAMILY} ${NFT_TABLE}, ip_forward=1`
      )
    })

    const disableOutbound = Effect.gen(function* () {
      if (yield* tableExists) yield* runChecked("nft", ["delete", "table", NFT_FAMILY, NFT_TABLE])
      const before = readText(forwardBefore)?.trim()
      if (before === undefined) return
      yield* Effect.try({ try: () => fs.writeFileSync(IP_FORWARD, `${before}\n`), catch: fsFailure(IP_FORWARD) })
      yield* Effect.try({ try: () => fs.rmSync(forwardBefore, { force: true }), catch: fsFailure(forwardBefore) })
      yield* Effect.logInfo(`outbound access off: table removed, ip_forward back to ${before}`)
    })

    return {
      pool,
      checkAvailable: Effect.suspend(() => {
        if (!hasNetAdmin())
          return Effect.fail(
            new NetworkUnavailable({
              reason:
                "the daemon lacks CAP_NET_ADMIN, which creating a VM's tap needs: run the daemon as root, or create the VM with --no-network"
            })
          )
        if (!fs.existsSync(TUN))
          return Effect.fail(
            new NetworkUnavailable({
              reason: `${TUN} does not exist (modprobe tun): VMs cannot get a tap; or create the VM with --no-network`
            })
          )
        return Effect.void
      }),
      attach: (vmId, network, owner) =>
        lock.withPermits(1)(
          Effect.gen(function* () {
            yield* ensureTap(network, owner)
            yield* enableOutbound
            users.add(vmId)
          })
        ),
      detach: (vmId, network) =>
        lock.withPermits(1)(
          Effect.gen(function* () {
            yield* removeTap(network.tap)
            users.delete(vmId)
            if (users.size === 0) yield* disableOutbound
          })
        ),
      listTaps: Effect.map(runChecked("ip", ["-j", "-d", "link", "show"]), (stdout) =>
        (JSON.parse(stdout || "[]") as ReadonlyArray<{ ifname?: string; linkinfo?: { info_kind?: string } }>)
          .filter((link) => link.linkinfo?.info_kind === "tun" && BANGER_TAP.test(link.ifname ?? ""))
          .map((link) => link.ifname!)
      ),
      removeTap: (tap) => lock.withPermits(1)(removeTap(tap)),
      adopt: (vmIds) =>
        lock.withPermits(1)(
          Effect.gen(function* () {
            users.clear()
            for (const id of vmIds) users.add(id)
            // On again when VMs still run: a dead VM's detach before this may have turned it off.
            yield* users.size === 0 ? disableOutbound : enableOutbound
          })
        ),
      resolvers: Effect.sync(() => chooseResolvers(readText(ETC_RESOLV_CONF), readText(RESOLVED_UPSTREAM)))
    } satisfies NetworkShape
  })

export class Network extends Context.Tag("banger/Network")<Network, NetworkShape>() {
  static readonly layer = (config: NetworkConfig) => Layer.effect(Network, makeNetwork(config))

  /** The pool from `--subnet` (or chosen from the routes), the forwarding memory in `<state>/host/`. */
  static readonly layerFromState = (subnet?: Ipv4Cidr) =>
    Layer.effect(
      Network,
      Effect.flatMap(StatePaths, (paths) => makeNetwork({ subnet, hostStateDir: paths.host }))
    )

  /** For unit tests: taps and the table as in-memory records. */
  static readonly layerTest = (fake: NetworkFake = makeNetworkFake()) => Layer.succeed(Network, fake.network)
}

export { makeNetworkFake, type NetworkFake } from "./network-fake.js"
