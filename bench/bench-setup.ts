/** What every pull bench needs first: its tools, a kernel, somewhere to write, optionally a slow registry. */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs/promises"
import * as http from "node:http"
import type * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

export type ScratchKind = "loop" | "ram" | "tmp"

export const log = (message: string) => process.stderr.write(`[bench] ${message}\n`)

/** Ctrl-C or a TERM still stops the daemons, registries and mounts a bench started. */
export const cleanUpOnSignals = (cleanup: () => Promise<void>) => {
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: cleaning up`)
    void cleanup().finally(() => process.exit(130))
  }
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
}

// ---------------------------------------------------------------------------------------------
// Preflight

export const TOOLS: ReadonlyArray<readonly [tool: string, pkg: string, toolchainOnly: boolean]> = [
  ["docker-registry", "docker-registry", false],
  ["mkfs.ext4", "e2fsprogs", false],
  ["debugfs", "e2fsprogs", false],
  ["e2fsck", "e2fsprogs", false],
  ["skopeo", "skopeo", true],
  ["umoci", "umoci", true]
]

export const onPath = (tool: string) => spawnSync("sh", ["-c", `command -v "$0"`, tool]).status === 0

export const preflight = (options: { readonly bangerOnly: boolean }) => {
  const missing = TOOLS.filter(([tool, , toolchainOnly]) => !(toolchainOnly && options.bangerOnly) && !onPath(tool))
  if (missing.length > 0) {
    const packages = [...new Set(missing.map(([, pkg]) => pkg))]
    throw new Error(
      `missing ${missing.map(([tool]) => tool).join(", ")}; on Debian: apt-get install ${packages.join(" ")}`
    )
  }
}

/** The newest /boot/vmlinuz-* and its initrd, unless given. */
export const findKernel = async (options: {
  readonly kernel: string | undefined
  readonly initrd: string | undefined
}) => {
  if (options.kernel) return { kernel: options.kernel, initrd: options.initrd }
  const names = (await fs.readdir("/boot").catch(() => [] as Array<string>)).filter((n) => n.startsWith("vmlinuz-"))
  const newest = names.sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).at(-1)
  if (newest === undefined) throw new Error("no /boot/vmlinuz-*: pass --kernel (and --initrd)")
  const initrd = path.join("/boot", `initrd.img-${newest.slice("vmlinuz-".length)}`)
  const hasInitrd = await fs.access(initrd).then(
    () => true,
    () => false
  )
  return { kernel: path.join("/boot", newest), initrd: options.initrd ?? (hasInitrd ? initrd : undefined) }
}

// ---------------------------------------------------------------------------------------------
// A slower registry

/**
 * A loopback proxy in front of the registry that passes responses on at `mbps` MB/s, shared by all
 * connections: a registry across a real network, where the download is the slow part.
 */
export const throttlingProxy = async (target: string, mbps: number) => {
  const bytesPerMs = (mbps * 1e6) / 1000
  let free = 0
  const server = http.createServer((request, response) => {
    const upstream = http.request(
      `http://${target}${request.url}`,
      { method: request.method, headers: { ...request.headers, host: target } },
      async (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers)
        for await (const chunk of answer as AsyncIterable<Buffer>) {
          const now = performance.now()
          free = Math.max(free, now) + chunk.length / bytesPerMs
          if (free > now) await new Promise((resolve) => setTimeout(resolve, free - now))
          if (!response.write(chunk)) await new Promise((resolve) => response.once("drain", resolve))
        }
        response.end()
      }
    )
    upstream.on("error", () => response.destroy())
    request.pipe(upstream)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as net.AddressInfo
  return {
    host: `127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

// ---------------------------------------------------------------------------------------------
// Where both sides write

export interface Scratch {
  readonly dir: string
  readonly kind: ScratchKind
  readonly release: () => Promise<void>
}

export const runQuiet = (command: string, args: ReadonlyArray<string>) => {
  const result = spawnSync(command, args, { encoding: "utf8" })
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")}: ${result.stderr || result.error}`)
}

/**
 * A fresh ext4 (with its default journal) on a loop device, or a directory in the temp dir. The
 * loop device is the default for root: this machine's root filesystem has no journal, and ext4
 * without one passes over every inode freed in the last minute (dirty: six) on each create
 * (`recently_deleted`), so once a pull has removed its tree, the next tree's 10k creates cost
 * seconds of system time. That is a property of this host, not of either side being measured.
 */
export const scratchDir = async (wanted: ScratchKind | undefined, bytes = 16 * 1024 ** 3): Promise<Scratch> => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "banger-bench-"))
  const tmp: Scratch = { dir: root, kind: "tmp", release: () => fs.rm(root, { recursive: true, force: true }) }
  if (wanted === "tmp" || (wanted === undefined && process.getuid?.() !== 0)) return tmp
  // "ram": the loop device's file in /dev/shm, so that no step waits for the disk (deletes give
  // the memory back: mounted with discard).
  const image =
    wanted === "ram" ? path.join("/dev/shm", `${path.basename(root)}.ext4`) : path.join(root, "scratch.ext4")
  const mountPoint = path.join(root, "mnt")
  try {
    await fs.mkdir(mountPoint)
    await fs.writeFile(image, "")
    await fs.truncate(image, bytes)
    runQuiet("mkfs.ext4", ["-q", "-F", image])
    runQuiet("mount", ["-o", wanted === "ram" ? "loop,discard" : "loop", image, mountPoint])
  } catch (error) {
    await fs.rm(image, { force: true })
    await tmp.release()
    if (wanted === "loop") throw error
    log(
      `no loop-mounted scratch filesystem (${error instanceof Error ? error.message.trim() : error}); using ${os.tmpdir()}`
    )
    return scratchDir("tmp", bytes)
  }
  return {
    dir: mountPoint,
    kind: wanted === "ram" ? "ram" : "loop",
    release: async () => {
      // A loop device set up by mount is detached by umount; lazily if something still holds it.
      try {
        runQuiet("umount", [mountPoint])
      } catch (error) {
        log(`${error instanceof Error ? error.message.trim() : error}; detaching lazily`)
        runQuiet("umount", ["-l", mountPoint])
      }
      await fs.rm(image, { force: true })
      await fs.rm(root, { recursive: true, force: true })
    }
  }
}
