/**
 * A real Debian bookworm minbase tree plus the golden image's packages (images/golden/packages.txt),
 * built once per machine with debootstrap and cached under `<repo>/.cache/`. Tests that need a rootfs
 * which actually boots use it instead of hand-made trees.
 *
 * The cache is kept pristine (no test init script, nothing added): tests copy or layer on top of it.
 */

import { spawn } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")

const SUITE = "bookworm"

/** The golden image's package list, shared with images/golden/Dockerfile. */
export const goldenPackagesFile = path.join(repoRoot, "images", "golden", "packages.txt")

/** One package per line; `#` starts a comment. */
export const parsePackageList = (text: string): Array<string> =>
  text
    .split("\n")
    .map((line) => line.replace(/#.*/, "").trim())
    .filter((line) => line !== "")

export const goldenPackages = (): Array<string> => parsePackageList(readFileSync(goldenPackagesFile, "utf8"))

/**
 * The cache's name carries a hash of what goes into the tree, so editing the package list builds a
 * new tree instead of serving the old one.
 */
export const cacheName = (packages: ReadonlyArray<string> = goldenPackages()) => {
  const key = createHash("sha256")
    .update(JSON.stringify({ suite: SUITE, variant: "minbase", packages: [...packages].sort() }))
    .digest("hex")
    .slice(0, 12)
  return `debian-${SUITE}-minbase-${key}`
}

export interface DebianRootfsOptions {
  /** Defaults to defaultCacheDir(). */
  readonly cacheDir?: string
  /** Called once with the cold build time when this call is the one that ran debootstrap. */
  readonly onBuilt?: (info: BuildInfo) => void
  /** How long to wait for another process's build before giving up. */
  readonly waitTimeoutMs?: number
  /** Replaces debootstrap (for testing the cache and lock logic without a 30 s build). */
  readonly populate?: (target: string, packages: ReadonlyArray<string>) => Promise<{ readonly mirror: string }>
}

export interface BuildInfo {
  readonly mirror: string
  readonly suite: string
  /** What `--include` added to minbase. */
  readonly packages: ReadonlyArray<string>
  readonly durationMs: number
  readonly builtAt: string
}

/**
 * `<repo>/.cache`, unless BANGER_TEST_CACHE_DIR points elsewhere: CI runs in a fresh clone each time,
 * and a directory outside the clone spares it a debootstrap per run.
 */
export const defaultCacheDir = () => process.env.BANGER_TEST_CACHE_DIR || path.join(repoRoot, ".cache")

/** Where the cached tree lives: `<cacheDir>/<name>/rootfs`, with `<cacheDir>/<name>/complete` beside it. */
export const debianRootfsPaths = (cacheDir = defaultCacheDir()) => {
  const name = cacheName()
  const root = path.join(cacheDir, name)
  return {
    root,
    rootfs: path.join(root, "rootfs"),
    marker: path.join(root, "complete"),
    lock: path.join(cacheDir, `${name}.lock`),
    cacheDir
  }
}

/** The build record written when the cached tree was made, or undefined if there is no complete cache. */
export const debianRootfsInfo = async (cacheDir?: string): Promise<BuildInfo | undefined> => {
  const paths = debianRootfsPaths(cacheDir)
  try {
    return JSON.parse(await fs.readFile(paths.marker, "utf8")) as BuildInfo
  } catch {
    return undefined
  }
}

/**
 * Returns the directory of a complete Debian bookworm minbase tree with the golden image's packages,
 * building it on first use.
 * Concurrent callers (vitest workers, parallel runs) serialise on a lock directory; only one builds.
 */
export const debianRootfs = async (options: DebianRootfsOptions = {}): Promise<string> => {
  const paths = debianRootfsPaths(options.cacheDir)
  if (await exists(paths.marker)) return paths.rootfs
  await fs.mkdir(paths.cacheDir, { recursive: true })
  const release = await acquireLock(paths.lock, options.waitTimeoutMs ?? 30 * 60_000)
  try {
    // Someone else may have finished while we waited for the lock.
    if (await exists(paths.marker)) return paths.rootfs
    await removeStale(paths)
    const info = await build(paths, options.populate ?? debootstrap)
    options.onBuilt?.(info)
    return paths.rootfs
  } finally {
    await release()
  }
}

const debootstrap = async (target: string, packages: ReadonlyArray<string>) => {
  const mirror = await debianMirror()
  const include = packages.length > 0 ? [`--include=${packages.join(",")}`] : []
  await run("debootstrap", ["--variant=minbase", ...include, SUITE, target, mirror], { logPrefix: "debootstrap" })
  // debootstrap leaves its apt lists and .deb cache; they are 100+ MB that no test needs.
  await removeContents(path.join(target, "var/cache/apt/archives"), (name) => name.endsWith(".deb"))
  await removeContents(path.join(target, "var/lib/apt/lists"), (name) => name !== "lock" && name !== "partial")
  return { mirror }
}

const build = async (
  paths: ReturnType<typeof debianRootfsPaths>,
  populate: NonNullable<DebianRootfsOptions["populate"]>
): Promise<BuildInfo> => {
  // Built beside the final location (same filesystem) so the closing rename is atomic.
  const staging = `${paths.root}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`
  const target = path.join(staging, "rootfs")
  await fs.mkdir(target, { recursive: true })
  const started = Date.now()
  const packages = goldenPackages()
  try {
    const { mirror } = await populate(target, packages)
    const info: BuildInfo = {
      mirror,
      suite: SUITE,
      packages,
      durationMs: Date.now() - started,
      builtAt: new Date().toISOString()
    }
    await fs.writeFile(path.join(staging, "complete"), `${JSON.stringify(info, null, 2)}\n`)
    await fs.rename(staging, paths.root)
    return info
  } catch (error) {
    await removeTree(staging)
    throw error
  }
}

/**
 * The Debian archive URI apt itself is configured with. Third-party repositories are skipped by
 * requiring a plain `bookworm` suite with component `main` (and, when given, Debian's own keyring).
 */
export const debianMirror = async (): Promise<string> => {
  const candidates: Array<string> = []
  const dir = "/etc/apt/sources.list.d"
  const files = await fs.readdir(dir).catch(() => [] as Array<string>)
  for (const name of files.sort()) {
    if (!name.endsWith(".sources")) continue
    candidates.push(...deb822Mirrors(await fs.readFile(path.join(dir, name), "utf8")))
  }
  for (const file of [
    "/etc/apt/sources.list",
    ...files.filter((f) => f.endsWith(".list")).map((f) => path.join(dir, f))
  ]) {
    const text = await fs.readFile(file, "utf8").catch(() => "")
    candidates.push(...sourcesListMirrors(text))
  }
  const mirror = candidates.find((uri) => /^https?:\/\//.test(uri))
  if (!mirror) throw new Error(`no Debian ${SUITE} archive found in apt's sources`)
  return mirror
}

export const deb822Mirrors = (text: string): Array<string> => {
  const found: Array<string> = []
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>()
    let last: string | undefined
    for (const line of stanza.split("\n")) {
      if (line.startsWith("#")) continue
      if (/^\s/.test(line) && last) {
        fields.set(last, `${fields.get(last)} ${line.trim()}`)
        continue
      }
      const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line)
      if (match) {
        last = match[1]!.toLowerCase()
        fields.set(last, match[2]!.trim())
      }
    }
    const words = (key: string) => (fields.get(key) ?? "").split(/\s+/).filter(Boolean)
    if (fields.get("enabled")?.toLowerCase() === "no") continue
    if (!words("types").includes("deb")) continue
    if (!words("suites").includes(SUITE) || !words("components").includes("main")) continue
    const signedBy = fields.get("signed-by")
    if (signedBy && !signedBy.includes("debian-archive-keyring")) continue
    found.push(...words("uris"))
  }
  return found
}

export const sourcesListMirrors = (text: string): Array<string> => {
  const found: Array<string> = []
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim()
    // deb [options] uri suite component...
    const match = /^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s+(.*)$/.exec(line)
    if (!match) continue
    const [, options, uri, suite, components] = match
    if (suite !== SUITE || !components!.split(/\s+/).includes("main")) continue
    const signedBy = /signed-by=(\S+)/.exec(options ?? "")?.[1]
    if (signedBy && !signedBy.includes("debian-archive-keyring")) continue
    found.push(uri!)
  }
  return found
}

const exists = (p: string) =>
  fs.access(p).then(
    () => true,
    () => false
  )

const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * mkdir is atomic, so the directory is the lock; the owner's pid inside lets a waiter break a lock
 * whose builder was killed. (Same machine only: the cache is per machine anyway.)
 */
const acquireLock = async (lock: string, timeoutMs: number): Promise<() => Promise<void>> => {
  const deadline = Date.now() + timeoutMs
  const owner = path.join(lock, "owner")
  for (;;) {
    try {
      await fs.mkdir(lock)
      await fs.writeFile(owner, String(process.pid))
      return () => fs.rm(lock, { recursive: true, force: true })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    }
    const pid = Number(await fs.readFile(owner, "utf8").catch(() => ""))
    if (pid > 0 && !pidAlive(pid)) {
      // Break it by renaming first, so two waiters cannot both remove a lock a third just took.
      const broken = `${lock}.broken-${process.pid}-${randomBytes(4).toString("hex")}`
      if (
        await fs.rename(lock, broken).then(
          () => true,
          () => false
        )
      ) {
        await fs.rm(broken, { recursive: true, force: true })
      }
      continue
    }
    // A lock without an owner file is either being created right now or was left by a process killed
    // between mkdir and writeFile; give it a grace period based on its age.
    if (!pid) {
      const stat = await fs.stat(lock).catch(() => undefined)
      if (stat && Date.now() - stat.mtimeMs > 60_000) await fs.rm(lock, { recursive: true, force: true })
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock} (held by pid ${pid || "?"})`)
    await new Promise((resolve) => setTimeout(resolve, 1000))
  }
}

/** Staging dirs of builds that died; we hold the lock, so none of them is in progress. */
const removeStale = async (paths: ReturnType<typeof debianRootfsPaths>) => {
  const prefix = `${path.basename(paths.root)}.tmp-`
  for (const name of await fs.readdir(paths.cacheDir)) {
    if (name.startsWith(prefix)) await removeTree(path.join(paths.cacheDir, name))
  }
  // A root without its marker cannot come from the rename, but be robust to hand edits.
  if (await exists(paths.root)) await removeTree(paths.root)
}

/**
 * debootstrap mounts /proc and /sys inside the target; a killed build leaves them mounted. Unmount
 * everything below the tree first, and never cross filesystems while deleting.
 */
export const removeTree = async (dir: string) => {
  const mounts = (await fs.readFile("/proc/self/mounts", "utf8").catch(() => ""))
    .split("\n")
    .map((line) => line.split(" ")[1]?.replace(/\\040/g, " "))
    .filter((mnt): mnt is string => !!mnt && (mnt === dir || mnt.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length)
  for (const mnt of mounts) await run("umount", ["-l", mnt]).catch(() => undefined)
  await run("rm", ["-rf", "--one-file-system", "--", dir])
}

const removeContents = async (dir: string, select: (name: string) => boolean) => {
  for (const name of await fs.readdir(dir).catch(() => [] as Array<string>)) {
    if (select(name)) await fs.rm(path.join(dir, name), { recursive: true, force: true })
  }
}

/** Runs a command and returns its stdout; an error carries the tail of both streams. */
export const run = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly logPrefix?: string; readonly cwd?: string } = {}
): Promise<string> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], cwd: options.cwd })
    const stdout: Array<Buffer> = []
    let tail = ""
    const keep = (chunk: Buffer) => {
      tail = (tail + chunk.toString()).slice(-16 * 1024)
    }
    child.stdout.on("data", (chunk: Buffer) => {
      stdout.push(chunk)
      keep(chunk)
    })
    child.stderr.on("data", keep)
    child.on("error", reject)
    child.on("close", (code, signal) => {
      if (code === 0) resolve(Buffer.concat(stdout).toString())
      else
        reject(
          new Error(
            `${options.logPrefix ?? command} ${args.join(" ")} failed (${signal ?? code}):\n${tail.slice(-4000)}`
          )
        )
    })
  })
