import { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { FilesystemError, type GuestPathError } from "../../domain/errors.js"
import {
  type GuestEdit,
  GuestFs,
  type GuestFsError,
  type GuestReads,
  type ReadAheadPaths
} from "../../layers/guest/guest-fs.js"
import {
  GUEST_ACPI_DIR,
  GUEST_BUSYBOX,
  GUEST_CONFIG,
  GUEST_INIT,
  GUEST_POWER_BUTTON,
  HOST_BUSYBOX,
  INIT_SCRIPT,
  POWER_BUTTON_SCRIPT,
  readyLine,
  renderConfig
} from "../../layers/guest/init/init-script.js"
import {
  chooseInit,
  commandEnvironment,
  commandLine,
  type ImageRunConfig,
  type InitChoice,
  resolveUser
} from "./guest-init.js"
import {
  GUEST_NETWORK_READS,
  type GuestNetworkOptions,
  type GuestNetworkSetup,
  guestNetworkEdits
} from "./guest-network.js"
import { type GuestSsh, SSHD_PATHS, sshEdits } from "./guest-ssh.js"

export interface KernelModules {
  /** `uname -r` of the kernel the VM boots. */
  readonly version: string
  /** The modules tree on the host (what lands in /lib/modules/<version>). */
  readonly dir: string
}

export interface ConfigureGuestOptions {
  /** The VM's work disk (ext4, not mounted). */
  readonly disk: string
  /** The VM name: its hostname, and the name in the ready line. */
  readonly name: string
  readonly config: ImageRunConfig
  readonly modules?: KernelModules | undefined
  /** The static busybox copied in for the built-in init; Debian's busybox-static by default. */
  readonly busybox?: string | undefined
  /** The VM's host key and root's authorized keys (see guest-ssh.ts). */
  readonly ssh?: GuestSsh | undefined
  /** Absent for a VM made with `--no-network`. */
  readonly network?: GuestNetworkOptions | undefined
  /**
   * What readGuestAhead read from the image this disk is an unmodified clone of (while the clone
   * was made); without it the disk itself is read ahead first.
   */
  readonly reads?: GuestReads | undefined
}

export interface GuestSetup {
  readonly init: InitChoice
  /** What the kernel command line needs for this guest (`init=/.banger/init` for banger's init). */
  readonly kernelArgs: ReadonlyArray<string>
  readonly modulesCopied: boolean
  /** Who configures eth0 in the guest ("none" without a network, or when the image has no known way). */
  readonly networkSetup: GuestNetworkSetup
}

const MOUNT_POINTS: ReadonlyArray<readonly [string, number]> = [
  ["/proc", 0o555],
  ["/sys", 0o555],
  ["/dev", 0o755],
  ["/run", 0o755],
  ["/tmp", 0o1777]
]

/** Scratch images have none; the initramfs also needs /dev in the new root to hand over the console. */
const mountPoints = (): Array<GuestEdit> =>
  MOUNT_POINTS.map(([dir, mode]) => ({ _tag: "Mkdirp", path: dir, options: { mode } }))

/** A debootstrap image carries its build host's hostname; every image gets the VM's. */
const identity = (name: string): Array<GuestEdit> => [
  { _tag: "Mkdirp", path: "/etc" },
  { _tag: "WriteFile", path: "/etc/hostname", content: `${name}\n` },
  {
    _tag: "WriteFile",
    path: "/etc/hosts",
    content: `127.0.0.1\tlocalhost\n127.0.1.1\t${name}\n::1\tlocalhost ip6-localhost ip6-loopback\n`
  }
]

const detectInit = Effect.fn("vm.guest.detectInit")(function* (disk: string) {
  const guest = yield* GuestFs
  // The canonical path holds no symlinks, so its lstat is /sbin/init's stat, and cheaper: each
  // directory listed is one debugfs run (in a usrmerged systemd image 4, where a stat took 12).
  const sbinInitPath = yield* guest.realpath(disk, "/sbin/init")
  return chooseInit({
    sbinInit: sbinInitPath === undefined ? undefined : yield* guest.lstat(disk, sbinInitPath),
    sbinInitPath,
    hasInittab: yield* guest.exists(disk, "/etc/inittab")
  })
})

const copyModules = Effect.fn("vm.guest.modules")(function* (disk: string, modules: KernelModules | undefined) {
  const guest = yield* GuestFs
  if (modules === undefined) return false
  const target = `/lib/modules/${modules.version}`
  if (yield* guest.exists(disk, target)) return false
  yield* guest.copyIn(disk, modules.dir, target)
  return true
})

const READY_UNIT = "banger-ready.service"
const WANTS = "/etc/systemd/system/multi-user.target.wants"

/** systemd's quoting: C-style escapes inside double quotes, and `%` starts a specifier. */
const unitWord = (text: string) => `"${text.replace(/[\\"]/g, "\\$&").replaceAll("%", "%%")}"`

const readText = (disk: string, path: string) =>
  Effect.flatMap(GuestFs, (guest) =>
    Effect.map(guest.readFile(disk, path), (bytes) => Buffer.from(bytes).toString("utf8"))
  )

/**
 * For an image's own init: one line on the console once it has booted. systemd gets an empty
 * machine-id (it makes a fresh one at boot from an empty file, so clones never share one) and a
 * oneshot unit; sysvinit a `once` entry in the inittab of the runlevels a normal boot reaches.
 */
const readyNotice = Effect.fn("vm.guest.readyNotice")(function* (disk: string, name: string, systemd: boolean) {
  const guest = yield* GuestFs
  if (systemd) {
    const unit = [
      "[Unit]",
      "Description=Tell banger this VM is ready",
      "After=basic.target",
      "",
      "[Service]",
      "Type=oneshot",
      `ExecStart=/bin/echo ${unitWord(readyLine(name))}`,
      "StandardOutput=tty",
      "TTYPath=/dev/console",
      "",
      "[Install]",
      "WantedBy=multi-user.target",
      ""
    ].join("\n")
    const linked = (yield* guest.lstat(disk, `${WANTS}/${READY_UNIT}`)) !== undefined
    return [
      { _tag: "WriteFile", path: "/etc/machine-id", content: "", options: { mode: 0o444 } },
      { _tag: "Mkdirp", path: WANTS },
      { _tag: "WriteFile", path: `/etc/systemd/system/${READY_UNIT}`, content: unit },
      ...(linked ? [] : [{ _tag: "Symlink" as const, path: `${WANTS}/${READY_UNIT}`, target: `../${READY_UNIT}` }])
    ] satisfies Array<GuestEdit>
  }
  const kept = (yield* readText(disk, "/etc/inittab")).split("\n").filter((line) => !line.startsWith("bgr:"))
  while (kept.at(-1) === "") kept.pop()
  const say = `echo '${readyLine(name).replaceAll("'", "")}' >/dev/console`
  return [
    {
      _tag: "WriteFile",
      path: "/etc/inittab",
      content: `${[...kept, `bgr:2345:once:/bin/sh -c "${say}"`].join("\n")}\n`
    }
  ] satisfies Array<GuestEdit>
})

/** banger's init, its config and a static busybox under /.banger/. */
const builtinInit = Effect.fn("vm.guest.builtinInit")(function* (
  disk: string,
  name: string,
  config: ImageRunConfig,
  busybox: string,
  network: GuestNetworkOptions | undefined
) {
  const guest = yield* GuestFs
  const fs = yield* FileSystem.FileSystem
  const binary = yield* fs.readFile(busybox).pipe(
    Effect.mapError(
      (error) =>
        new FilesystemError({
          path: busybox,
          reason: `cannot read busybox (apt-get install busybox-static): ${error.message}`
        })
    )
  )
  const readOptional = (path: string) =>
    Effect.flatMap(guest.stat(disk, path), (entry) =>
      entry?.kind === "file" ? readText(disk, path) : Effect.succeed(undefined)
    )
  const user = yield* resolveUser(
    disk,
    config.user,
    yield* readOptional("/etc/passwd"),
    yield* readOptional("/etc/group")
  )
  const workingDir = config.workingDir || "/"
  const initConfig = renderConfig({
    name,
    hostname: name,
    uid: user.uid,
    gid: user.gid,
    workingDir,
    env: commandEnvironment(config, name, user),
    argv: commandLine(config),
    network:
      network === undefined || network.kernelConfigures
        ? undefined
        : {
            address: `${network.network.guestAddress}/${network.network.prefixLength}`,
            gateway: network.network.hostAddress
          }
  })
  return [
    { _tag: "Mkdirp", path: workingDir },
    { _tag: "Mkdirp", path: `${GUEST_ACPI_DIR}/PWRF` },
    { _tag: "WriteFile", path: GUEST_BUSYBOX, content: binary, options: { mode: 0o755 } },
    { _tag: "WriteFile", path: GUEST_POWER_BUTTON, content: POWER_BUTTON_SCRIPT, options: { mode: 0o755 } },
    { _tag: "WriteFile", path: GUEST_CONFIG, content: initConfig },
    { _tag: "WriteFile", path: GUEST_INIT, content: INIT_SCRIPT, options: { mode: 0o755 } }
  ] satisfies Array<GuestEdit>
})

/**
 * What configuring reads, asked for up front so that it comes in one or two debugfs runs rather
 * than one per directory and link on each path. Anything missing here is still read (apply reads
 * its edits' paths ahead itself), only in a run of its own.
 */
const readAheadPaths = (options: GuestReadOptions): ReadAheadPaths => ({
  paths: [
    "/sbin/init",
    `${WANTS}/${READY_UNIT}`,
    `/etc/systemd/system/${READY_UNIT}`,
    "/etc/machine-id",
    GUEST_INIT,
    `${GUEST_ACPI_DIR}/PWRF`,
    options.config.workingDir || "/",
    ...(options.modules === undefined ? [] : [`/lib/modules/${options.modules.version}`]),
    ...[...mountPoints(), ...identity(options.name)].map((edit) => edit.path),
    ...(options.network === undefined ? [] : GUEST_NETWORK_READS.paths),
    // ssh's files: read ahead whether or not ssh is configured, so reads made before its host
    // key exists (alongside the disk clone) cover them.
    ...SSHD_PATHS,
    "/root/.ssh/authorized_keys",
    "/etc/ssh/sshd_config.d"
  ],
  files: [
    "/etc/inittab",
    "/etc/passwd",
    "/etc/group",
    ...(options.network === undefined ? [] : GUEST_NETWORK_READS.files)
  ]
})

/**
 * Step 3 of vm create: the work disk configured without mounting it. Everything is read and
 * checked first (the reads batched, see readAheadPaths), then written in one debugfs run (the
 * kernel's modules, when the image lacks them, in a second).
 */
export const configureGuest = (
  options: ConfigureGuestOptions
): Effect.Effect<GuestSetup, GuestFsError | FilesystemError, GuestFs | FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const guest = yield* GuestFs
    const reads = options.reads ?? (yield* guest.readAhead(options.disk, readAheadPaths(options)))
    return yield* guest.batchReads(options.disk, reads, configureSteps(options))
  })

type GuestReadOptions = Pick<ConfigureGuestOptions, "name" | "config" | "modules" | "network">

/** configureGuest's reads, from `image` (a rootfs nothing writes) while its clone is being made. */
export const readGuestAhead = (image: string, options: GuestReadOptions) =>
  Effect.flatMap(GuestFs, (guest) => guest.readAhead(image, readAheadPaths(options)))

/**
 * Mount points, hostname and hosts, then either a ready notice for the image's own init or
 * banger's built-in init, then the guest's side of its network, then ssh's host key and
 * authorized keys.
 */
const configureSteps = Effect.fn("vm.configureGuest")(function* (
  options: ConfigureGuestOptions
): Effect.fn.Return<GuestSetup, GuestFsError | FilesystemError | GuestPathError, GuestFs | FileSystem.FileSystem> {
  const { disk, name } = options
  const guest = yield* GuestFs
  const init = yield* detectInit(disk)
  const initEdits =
    init._tag === "ImageInit"
      ? yield* readyNotice(disk, name, init.systemd)
      : yield* builtinInit(disk, name, options.config, options.busybox ?? HOST_BUSYBOX, options.network)
  const network =
    options.network === undefined
      ? { setup: "none" as const, edits: [] }
      : yield* guestNetworkEdits(disk, init, options.network)
  const ssh = options.ssh === undefined ? [] : yield* sshEdits(disk, options.ssh)
  yield* guest.apply(disk, [...mountPoints(), ...identity(name), ...initEdits, ...network.edits, ...ssh])
  const modulesCopied = yield* copyModules(disk, options.modules)
  return {
    init,
    kernelArgs: init._tag === "BuiltinInit" ? [`init=${GUEST_INIT}`] : [],
    modulesCopied,
    networkSetup: network.setup
  }
})
