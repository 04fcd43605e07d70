/**
 * The fixture cache's build-once guarantees, with a fake populate step standing in for debootstrap
 * (the real build is exercised by boot-harness.test.ts).
 */

import { spawnSync } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import {
  cacheName,
  deb822Mirrors,
  debianRootfs,
  debianRootfsInfo,
  debianRootfsPaths,
  goldenPackages,
  goldenPackagesFile,
  parsePackageList,
  removeTree,
  sourcesListMirrors
} from "../support/debian-rootfs.js"

let cacheDir: string

beforeEach(async () => {
  cacheDir = await fs.mkdtemp(path.join(os.tmpdir(), "banger-debcache-"))
})

afterEach(async () => {
  // removeTree unmounts anything a failed test left mounted inside before deleting.
  await removeTree(cacheDir)
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const fakePopulate =
  (counter: { builds: number }, delayMs = 300) =>
  async (target: string) => {
    counter.builds++
    await fs.mkdir(path.join(target, "etc"), { recursive: true })
    await sleep(delayMs)
    await fs.writeFile(path.join(target, "etc/os-release"), "ID=debian\n")
    return { mirror: "http://mirror.invalid/debian" }
  }

/** What is left in the cache dir besides the finished tree. */
const leftovers = async () =>
  (await fs.readdir(cacheDir)).filter((name) => name !== path.basename(debianRootfsPaths(cacheDir).root))

describe("debianRootfs cache", () => {
  it("builds once for concurrent callers and leaves no lock or staging behind", async () => {
    const counter = { builds: 0 }
    const results = await Promise.all(
      [0, 1, 2].map(() => debianRootfs({ cacheDir, populate: fakePopulate(counter, 1500) }))
    )
    const paths = debianRootfsPaths(cacheDir)
    expect(results).toEqual([paths.rootfs, paths.rootfs, paths.rootfs])
    expect(counter.builds).toBe(1)
    expect(await fs.readFile(path.join(paths.rootfs, "etc/os-release"), "utf8")).toBe("ID=debian\n")
    expect(await leftovers()).toEqual([])
    expect((await debianRootfsInfo(cacheDir))?.mirror).toBe("http://mirror.invalid/debian")
    // A later call is served from the cache.
    await debianRootfs({ cacheDir, populate: fakePopulate(counter) })
    expect(counter.builds).toBe(1)
  })

  it("leaves nothing behind when the build fails, and builds on the next call", async () => {
    const failing = async (target: string) => {
      await fs.writeFile(path.join(target, "half-made"), "")
      throw new Error("mirror unreachable")
    }
    await expect(debianRootfs({ cacheDir, populate: failing })).rejects.toThrow(/mirror unreachable/)
    expect(await fs.readdir(cacheDir)).toEqual([])
    expect(await debianRootfsInfo(cacheDir)).toBeUndefined()

    const counter = { builds: 0 }
    await debianRootfs({ cacheDir, populate: fakePopulate(counter) })
    expect(counter.builds).toBe(1)
  })

  it("breaks the lock of a dead builder and removes its staging dir, mounts included", async () => {
    const paths = debianRootfsPaths(cacheDir)
    const dead = spawnSync("true").pid
    await fs.mkdir(paths.lock)
    await fs.writeFile(path.join(paths.lock, "owner"), String(dead))
    const staging = `${paths.root}.tmp-${dead}-deadbeef`
    const proc = path.join(staging, "rootfs/proc")
    await fs.mkdir(proc, { recursive: true })
    // What a SIGKILLed debootstrap leaves: a filesystem still mounted inside the target.
    expect(spawnSync("mount", ["-t", "tmpfs", "none", proc]).status).toBe(0)
    await fs.writeFile(path.join(proc, "inside-mount"), "")

    const counter = { builds: 0 }
    const rootfs = await debianRootfs({ cacheDir, populate: fakePopulate(counter), waitTimeoutMs: 10_000 })
    expect(rootfs).toBe(paths.rootfs)
    expect(counter.builds).toBe(1)
    expect(await leftovers()).toEqual([])
    expect(await fs.readFile("/proc/self/mounts", "utf8")).not.toContain(staging)
  })

  it("waits for a live builder and gives up at its timeout", async () => {
    const paths = debianRootfsPaths(cacheDir)
    await fs.mkdir(paths.lock)
    await fs.writeFile(path.join(paths.lock, "owner"), String(process.pid))
    const counter = { builds: 0 }
    const started = Date.now()
    await expect(debianRootfs({ cacheDir, populate: fakePopulate(counter), waitTimeoutMs: 1500 })).rejects.toThrow(
      /timed out waiting/
    )
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500)
    expect(counter.builds).toBe(0)
  })

  it("returns as soon as the lock holder finishes", async () => {
    const paths = debianRootfsPaths(cacheDir)
    await fs.mkdir(paths.lock)
    await fs.writeFile(path.join(paths.lock, "owner"), String(process.pid))
    const counter = { builds: 0 }
    const waiting = debianRootfs({ cacheDir, populate: fakePopulate(counter), waitTimeoutMs: 20_000 })
    // Play the holder: finish a build by hand, then release.
    await sleep(1200)
    await fs.mkdir(paths.rootfs, { recursive: true })
    await fs.writeFile(paths.marker, JSON.stringify({ mirror: "by-holder" }))
    await fs.rm(paths.lock, { recursive: true })
    expect(await waiting).toBe(paths.rootfs)
    expect(counter.builds).toBe(0)
  })
})

describe("the golden package list", () => {
  it("is what debootstrap is given and what the build records", async () => {
    const given: Array<ReadonlyArray<string>> = []
    await debianRootfs({
      cacheDir,
      populate: async (target, packages) => {
        given.push(packages)
        await fs.mkdir(path.join(target, "etc"), { recursive: true })
        return { mirror: "http://mirror.invalid/debian" }
      }
    })
    expect(given).toEqual([goldenPackages()])
    expect((await debianRootfsInfo(cacheDir))?.packages).toEqual(goldenPackages())
    // The recipe's promises (images/golden/README.md) hold for the list the tests boot.
    for (const name of [
      "systemd",
      "systemd-sysv",
      "openssh-server",
      "tmux",
      "git",
      "curl",
      "ca-certificates",
      "sudo"
    ]) {
      expect(goldenPackages()).toContain(name)
    }
    expect(await fs.readFile(path.join(path.dirname(goldenPackagesFile), "Dockerfile"), "utf8")).toMatch(
      /COPY packages\.txt /
    )
  })

  it("keys the cache: another list is another tree, the order aside", () => {
    const current = goldenPackages()
    expect(path.basename(debianRootfsPaths(cacheDir).root)).toBe(cacheName(current))
    expect(cacheName([...current].reverse())).toBe(cacheName(current))
    expect(cacheName([...current, "vim-tiny"])).not.toBe(cacheName(current))
    expect(cacheName(current.slice(1))).not.toBe(cacheName(current))
  })

  it("reads one package a line, comments and blank lines aside", () => {
    expect(parsePackageList("# init\nsystemd\n\n  tmux  # terminal\n#git\n")).toEqual(["systemd", "tmux"])
  })
})

describe("mirror discovery", () => {
  it("takes the Debian archive from deb822 sources, skipping third-party, security-only and disabled ones", () => {
    const text = [
      "Types: deb",
      "URIs: https://vendor.invalid/node_20.x",
      "Suites: nodistro",
      "Components: main",
      "Signed-By: /usr/share/keyrings/vendor.gpg",
      "",
      "Types: deb",
      "URIs: http://disabled.invalid/debian",
      "Suites: bookworm",
      "Components: main",
      "Enabled: no",
      "",
      "Types: deb-src",
      "URIs: http://src.invalid/debian",
      "Suites: bookworm",
      "Components: main",
      "",
      "Types: deb",
      "# a comment inside the stanza",
      "URIs: http://mirror.invalid/debian",
      "Suites: bookworm bookworm-updates",
      "Components: main",
      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg",
      "",
      "Types: deb",
      "URIs: http://mirror.invalid/debian-security",
      "Suites: bookworm-security",
      "Components: main"
    ].join("\n")
    expect(deb822Mirrors(text)).toEqual(["http://mirror.invalid/debian"])
  })

  it("takes the Debian archive from one-line sources.list entries", () => {
    const text = [
      "# deb http://commented.invalid/debian bookworm main",
      "deb [signed-by=/usr/share/keyrings/vendor.gpg] https://vendor.invalid/apt cloud-sdk-bookworm main",
      "deb [signed-by=/usr/share/keyrings/vendor.gpg] https://vendor2.invalid/apt bookworm main",
      "deb http://mirror.invalid/debian-security bookworm-security main",
      "deb [arch=amd64] http://mirror.invalid/debian bookworm main contrib"
    ].join("\n")
    expect(sourcesListMirrors(text)).toEqual(["http://mirror.invalid/debian"])
  })
})
