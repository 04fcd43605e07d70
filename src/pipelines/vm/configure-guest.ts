import { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { FilesystemError } from "../../domain/errors.js"
import { GuestFs, type GuestFsError } from "../../layers/guest/guest-fs.js"
import {
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
}

export interface GuestSetup {
  readonly init: InitChoice
  /** What the kernel command line needs for this guest (`init=/.banger/init` for banger's init). */
  readonly kernelArgs: ReadonlyArray<string>
  readonly modulesCopied: boolean
}

const MOUNT_POINTS: ReadonlyArray<readonly [string, number]> = [
  ["/proc", 0o555],
  ["/sys", 0o555],
  ["/dev", 0o755],
  ["/run", 0o755],
  ["/tmp", 0o1777]
]

/** Scratch images have none; the initramfs also needs /dev in the new root to hand over the console. */
const createMountPoints = Effect.fn("vm.guest.mountPoints")(function* (disk: string) {
  const guest = yield* GuestFs
  for (const [dir, mode] of MOUNT_POINTS) yield* guest.mkdirp(disk, dir, { mode })
})

/** A debootstrap image carries its build host's hostname; every image gets the VM's. */
const writeIdentity = Effect.fn("vm.guest.identity")(function* (disk: string, name: string) {
  const guest = yield* GuestFs
  yield* guest.mkdirp(disk, "/etc")
  yield* guest.writeFile(disk, "/etc/hostname", `${name}\n`)
  yield* guest.writeFile(
    disk,
    "/etc/hosts",
    `127.0.0.1\tlocalhost\n127.0.1.1\t${name}\n::1\tlocalhost ip6-localhost ip6-loopback\n`
  )
})

const detectInit = Effect.fn("vm.guest.detectInit")(function* (disk: string) {
  const guest = yield* GuestFs
  return chooseInit({
    sbinInit: yield* guest.stat(disk, "/sbin/init"),
    sbinInitPath: yield* guest.realpath(disk, "/sbin/init"),
    hasInittab: yield* guest.exists(disk, "/etc/inittab")
  })
})

/** systemd makes a fresh machine id at boot from an empty file, so clones never share one. */
const resetMachineId = Effect.fn("vm.guest.machineId")(function* (disk: string) {
  const guest = yield* GuestFs
  yield* guest.writeFile(disk, "/etc/machine-id", "", { mode: 0o444 })
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

/** systemd's quoting: C-style escapes inside double quotes, and `%` starts a specifier. */
const unitWord = (text: string) => `"${text.replace(/[\\"]/g, "\\$&").replaceAll("%", "%%")}"`

/** For an image's own init: one line on the console once it has booted. */
const addReadyNotice = Effect.fn("vm.guest.readyNotice")(function* (disk: string, name: string, systemd: boolean) {
  const guest = yield* GuestFs
  if (systemd) {
    yield* guest.mkdirp(disk, "/etc/systemd/system/multi-user.target.wants")
    yield* guest.writeFile(
      disk,
      `/etc/systemd/system/${READY_UNIT}`,
      [
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
    )
    const wants = `/etc/systemd/system/multi-user.target.wants/${READY_UNIT}`
    if ((yield* guest.lstat(disk, wants)) === undefined) yield* guest.symlink(disk, wants, `../${READY_UNIT}`)
    return
  }
  // sysvinit: a `once` entry in the inittab of the runlevels a normal boot reaches.
  const inittab = Buffer.from(yield* guest.readFile(disk, "/etc/inittab")).toString("utf8")
  const kept = inittab.split("\n").filter((line) => !line.startsWith("bgr:"))
  while (kept.at(-1) === "") kept.pop()
  const say = `echo '${readyLine(name).replaceAll("'", "")}' >/dev/console`
  yield* guest.writeFile(disk, "/etc/inittab", `${[...kept, `bgr:2345:once:/bin/sh -c "${say}"`].join("\n")}\n`)
})

/** banger's init, its config and a static busybox under /.banger/. */
const installBuiltinInit = Effect.fn("vm.guest.builtinInit")(function* (
  disk: string,
  name: string,
  config: ImageRunConfig,
  busybox: string
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
      entry?.kind === "file"
        ? Effect.map(guest.readFile(disk, path), (bytes) => Buffer.from(bytes).toString("utf8"))
        : Effect.succeed(undefined)
    )
  const user = yield* resolveUser(
    disk,
    config.user,
    yield* readOptional("/etc/passwd"),
    yield* readOptional("/etc/group")
  )
  const workingDir = config.workingDir || "/"
  yield* guest.mkdirp(disk, workingDir)
  yield* guest.mkdirp(disk, "/.banger/acpi/PWRF", { mode: 0o755 })
  yield* guest.writeFile(disk, GUEST_BUSYBOX, binary, { mode: 0o755 })
  yield* guest.writeFile(disk, GUEST_POWER_BUTTON, POWER_BUTTON_SCRIPT, { mode: 0o755 })
  yield* guest.writeFile(
    disk,
    GUEST_CONFIG,
    renderConfig({
      name,
      hostname: name,
      uid: user.uid,
      gid: user.gid,
      workingDir,
      env: commandEnvironment(config, name, user),
      argv: commandLine(config)
    })
  )
  yield* guest.writeFile(disk, GUEST_INIT, INIT_SCRIPT, { mode: 0o755 })
})

/**
 * Step 3 of vm create: the work disk configured without mounting it. Hostname and hosts; the
 * kernel's modules when the image lacks them; mount points; then either a ready notice for the
 * image's own init or banger's built-in init.
 */
export const configureGuest = Effect.fn("vm.configureGuest")(function* (
  options: ConfigureGuestOptions
): Effect.fn.Return<GuestSetup, GuestFsError | FilesystemError, GuestFs | FileSystem.FileSystem> {
  const { disk, name } = options
  yield* createMountPoints(disk)
  yield* writeIdentity(disk, name)
  const modulesCopied = yield* copyModules(disk, options.modules)
  const init = yield* detectInit(disk)
  if (init._tag === "ImageInit") {
    if (init.systemd) yield* resetMachineId(disk)
    yield* addReadyNotice(disk, name, init.systemd)
    return { init, kernelArgs: [], modulesCopied }
  }
  yield* installBuiltinInit(disk, name, options.config, options.busybox ?? HOST_BUSYBOX)
  return { init, kernelArgs: [`init=${GUEST_INIT}`], modulesCopied }
})
