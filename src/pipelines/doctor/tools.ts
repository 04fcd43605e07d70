import { Effect } from "effect"
import { HostProbe } from "../../layers/host/host-probe.js"
import { fail, ok, probeTool, type Tool, warn } from "./result.js"

/** Where Debian keeps admin tools that a non-root user's PATH often lacks. */
const SBIN_DIRS = ["/usr/sbin", "/sbin"]

/** For a command missing from PATH: the sbin dir that has it, so the fix is a PATH change, not a package. */
const offPath = (command: string) =>
  Effect.gen(function* () {
    const host = yield* HostProbe
    for (const dir of SBIN_DIRS) {
      if ((yield* host.stat(`${dir}/${command}`)) !== undefined) return dir
    }
    return undefined
  })

const missingFix = (command: string, install: string) =>
  Effect.map(offPath(command), (dir) =>
    dir === undefined ? install : `add ${dir} to PATH (${command} is there): export PATH="$PATH:${dir}"`
  )

/** The oldest e2fsck that checks what banger writes (metadata_csum arrived in e2fsprogs 1.43). */
export const MIN_E2FSPROGS: readonly [number, number] = [1, 43]

const older = (version: string, min: readonly [number, number]) => {
  const [major = 0, minor = 0] = version.split(".").map(Number)
  return major < min[0] || (major === min[0] && minor < min[1])
}

/** e2fsck checks every image; debugfs and resize2fs configure and grow VM disks. */
export const checkE2fsprogs = Effect.gen(function* () {
  const host = yield* HostProbe
  const install = "apt-get install e2fsprogs"
  for (const command of ["debugfs", "resize2fs"]) {
    if ((yield* host.which(command)) === undefined) {
      return fail("e2fsprogs", `${command} not found on PATH`, yield* missingFix(command, install))
    }
  }
  const e2fsck = yield* probeTool("e2fsck", ["-V"], /e2fsck (\d+\.\d+(?:\.\d+)?)/)
  if (e2fsck._tag === "Missing")
    return fail("e2fsprogs", "e2fsck not found on PATH", yield* missingFix("e2fsck", install))
  if (e2fsck._tag === "Broken") return fail("e2fsprogs", `${e2fsck.path} does not run: ${e2fsck.output}`, install)
  if (older(e2fsck.version, MIN_E2FSPROGS)) {
    return fail(
      "e2fsprogs",
      `e2fsck ${e2fsck.version} cannot check the metadata_csum filesystems banger writes (needs ${MIN_E2FSPROGS.join(".")}+)`,
      `${install} (version ${MIN_E2FSPROGS.join(".")} or newer: Debian 9 and later)`
    )
  }
  return ok("e2fsprogs", `e2fsck ${e2fsck.version} (${e2fsck.path}), debugfs, resize2fs`)
})

const toolDetail = (command: string, tool: Tool) =>
  tool._tag === "Found"
    ? `${tool.path}: ${tool.version}`
    : tool._tag === "Broken"
      ? `${tool.path} does not run: ${tool.output}`
      : `${command} not found on PATH`

/** A program banger runs, checked for presence and version; `status` says how much its absence costs. */
const checkTool = (options: {
  readonly name: string
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly version: RegExp
  readonly package: string
  readonly status: typeof fail
  readonly why: string
}) =>
  Effect.gen(function* () {
    const tool = yield* probeTool(options.command, options.args, options.version)
    if (tool._tag === "Found") return ok(options.name, toolDetail(options.command, tool))
    const fix = yield* missingFix(options.command, `apt-get install ${options.package}`)
    return options.status(options.name, `${toolDetail(options.command, tool)}: ${options.why}`, fix)
  })

export const checkZstd = checkTool({
  name: "zstd",
  command: "zstd",
  args: ["--version"],
  version: /(v\d+\.\d+\.\d+)/,
  package: "zstd",
  status: fail,
  why: "pulls of images with zstd-compressed layers fail"
})

/** Optional: gzip layers are inflated by node's zlib without it (see rootfs/decompress.ts). */
export const checkIgzip = checkTool({
  name: "igzip",
  command: "igzip",
  args: ["--version"],
  version: /interface (\d+\.\d+\.\d+)/,
  package: "isal",
  status: warn,
  why: "gzip layers are inflated by node's zlib instead, about half as fast"
})

/** Optional: DiffIDs are hashed on the daemon's main thread without it (see host/stream-hasher.ts). */
export const checkOpenssl = checkTool({
  name: "openssl",
  command: "openssl",
  args: ["version"],
  version: /(OpenSSL \S+)/,
  package: "openssl",
  status: warn,
  why: "layers' DiffIDs are hashed on the daemon's main thread instead, slowing large pulls"
})

/** vm create makes banger's and each VM's keys with ssh-keygen; vm ssh and vm attach run ssh. */
export const checkOpenssh = Effect.gen(function* () {
  const host = yield* HostProbe
  const install = "apt-get install openssh-client"
  if ((yield* host.which("ssh-keygen")) === undefined) {
    return fail("openssh", "ssh-keygen not found on PATH: vm create makes the VMs' ssh keys with it", install)
  }
  const ssh = yield* probeTool("ssh", ["-V"], /(OpenSSH_[^\s,]+)/)
  if (ssh._tag !== "Found") return fail("openssh", `${toolDetail("ssh", ssh)}: vm ssh and vm attach run it`, install)
  return ok("openssh", `${ssh.path}: ${ssh.version}, with ssh-keygen`)
})

export const checkIp = checkTool({
  name: "ip",
  command: "ip",
  args: ["-V"],
  version: /(iproute2-[^\s,]+)/,
  package: "iproute2",
  status: warn,
  why: "VM networking (tap devices) needs it"
})

export const checkNft = checkTool({
  name: "nft",
  command: "nft",
  args: ["--version"],
  version: /nftables (v\S+)/,
  package: "nftables",
  status: warn,
  why: "VM networking (NAT rules) needs it"
})
