import { Effect } from "effect"
import type { VmNetwork } from "../../domain/network.js"
import { type GuestEdit, GuestFs } from "../../layers/guest/guest-fs.js"
import { netmask } from "../../layers/network/address.js"
import { resolvConf } from "../../layers/network/resolvers.js"
import type { InitChoice } from "./guest-init.js"

export interface GuestNetworkOptions {
  readonly network: VmNetwork
  /** The kernel configures eth0 itself from `ip=` (it has IP autoconfiguration). */
  readonly kernelConfigures: boolean
  /** The host's upstream resolvers. */
  readonly resolvers: ReadonlyArray<string>
}

/** Who brings eth0 up in the guest. */
export type GuestNetworkSetup = "kernel" | "builtin-init" | "systemd-networkd" | "ifupdown" | "none"

const NETWORKD_UNIT = "systemd-networkd.service"
const UNIT_DIRS = ["/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"]
const WANTS = "/etc/systemd/system/multi-user.target.wants"
export const NETWORKD_FILE = "/etc/systemd/network/10-banger-eth0.network"
export const IFUPDOWN_FILE = "/etc/network/interfaces.d/banger-eth0"
const INTERFACES = "/etc/network/interfaces"

/** What guestNetworkEdits looks up and reads, for configureGuest's read-ahead. */
export const GUEST_NETWORK_READS = {
  paths: [
    ...UNIT_DIRS.map((dir) => `${dir}/${NETWORKD_UNIT}`),
    `${WANTS}/${NETWORKD_UNIT}`,
    NETWORKD_FILE,
    IFUPDOWN_FILE,
    "/etc/resolv.conf"
  ],
  files: [INTERFACES]
} as const

/** Matched by MAC, so a renamed interface is still the one on the VM's tap. */
export const networkdConfig = (options: GuestNetworkOptions) =>
  [
    "# Written by banger: the VM's address on its tap.",
    "[Match]",
    `MACAddress=${options.network.mac}`,
    "",
    "[Network]",
    `Address=${options.network.guestAddress}/${options.network.prefixLength}`,
    `Gateway=${options.network.hostAddress}`,
    ...options.resolvers.map((server) => `DNS=${server}`),
    ""
  ].join("\n")

export const ifupdownConfig = (network: VmNetwork) =>
  [
    "# Written by banger: the VM's address on its tap.",
    "auto eth0",
    "iface eth0 inet static",
    `  address ${network.guestAddress}`,
    `  netmask ${netmask(network.prefixLength)}`,
    `  gateway ${network.hostAddress}`,
    ""
  ].join("\n")

const readText = (disk: string, path: string) =>
  Effect.flatMap(GuestFs, (guest) =>
    Effect.map(guest.readFile(disk, path), (bytes) => Buffer.from(bytes).toString("utf8"))
  )

/** systemd-networkd when the image has it (enabled here if it is not), else ifupdown, else nothing. */
const ownInitEdits = Effect.fn("vm.guest.networkOwnInit")(function* (
  disk: string,
  systemd: boolean,
  options: GuestNetworkOptions
) {
  const guest = yield* GuestFs
  if (systemd) {
    for (const dir of UNIT_DIRS) {
      if (!(yield* guest.exists(disk, `${dir}/${NETWORKD_UNIT}`))) continue
      const enabled = (yield* guest.lstat(disk, `${WANTS}/${NETWORKD_UNIT}`)) !== undefined
      return {
        setup: "systemd-networkd" as const,
        edits: [
          { _tag: "Mkdirp", path: "/etc/systemd/network" },
          { _tag: "WriteFile", path: NETWORKD_FILE, content: networkdConfig(options) },
          { _tag: "Mkdirp", path: WANTS },
          ...(enabled
            ? []
            : [{ _tag: "Symlink" as const, path: `${WANTS}/${NETWORKD_UNIT}`, target: `${dir}/${NETWORKD_UNIT}` }])
        ] satisfies Array<GuestEdit>
      }
    }
  }
  if ((yield* guest.stat(disk, INTERFACES))?.kind === "file") {
    const interfaces = yield* readText(disk, INTERFACES)
    const sourced = /^\s*source(-directory)?\s+\/etc\/network\/interfaces\.d/m.test(interfaces)
    return {
      setup: "ifupdown" as const,
      edits: [
        { _tag: "Mkdirp", path: "/etc/network/interfaces.d" },
        { _tag: "WriteFile", path: IFUPDOWN_FILE, content: ifupdownConfig(options.network) },
        ...(sourced
          ? []
          : [
              {
                _tag: "WriteFile" as const,
                path: INTERFACES,
                content: `${interfaces.trimEnd()}\nsource /etc/network/interfaces.d/*\n`
              }
            ])
      ] satisfies Array<GuestEdit>
    }
  }
  return { setup: "none" as const, edits: [] as Array<GuestEdit> }
})

/**
 * The guest's side of its network, as edits for the work disk: eth0's address (unless the kernel
 * sets it from `ip=`, or banger's init does from its config) and the host's resolvers in
 * /etc/resolv.conf. A resolv.conf that is a symlink (to systemd-resolved's stub, say) belongs to
 * the image's resolver, which networkd's DNS= lines feed instead.
 */
export const guestNetworkEdits = Effect.fn("vm.guest.network")(function* (
  disk: string,
  init: InitChoice,
  options: GuestNetworkOptions
) {
  const guest = yield* GuestFs
  const resolv = yield* guest.lstat(disk, "/etc/resolv.conf")
  const resolvEdits: Array<GuestEdit> =
    options.resolvers.length > 0 && resolv?.kind !== "symlink"
      ? [{ _tag: "WriteFile", path: "/etc/resolv.conf", content: resolvConf(options.resolvers) }]
      : []
  if (options.kernelConfigures) return { setup: "kernel" as GuestNetworkSetup, edits: resolvEdits }
  if (init._tag === "BuiltinInit") return { setup: "builtin-init" as GuestNetworkSetup, edits: resolvEdits }
  const own = yield* ownInitEdits(disk, init.systemd, options)
  return { setup: own.setup as GuestNetworkSetup, edits: [...own.edits, ...resolvEdits] }
})
