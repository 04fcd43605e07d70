/**
 * Failure paths of `./bin/banger image pull` against a real registry (behind fault-injecting
 * loopback proxies): each fails with a one-line typed message and leaves no staging dir, temp
 * tree, partial download or row behind.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  expectOneLineError,
  runBanger,
  startBanger,
  startBangerDaemon,
  withBangerDaemon
} from "../support/banger-cli.js"
import { type BuiltLayer, buildLayer, type LayerEntrySpec } from "../support/layers.js"
import { findCloudKernel } from "../support/qemu.js"
import { pushImage, startRegistry, type TestRegistry } from "../support/registry.js"
import { type BlobFault, startRegistryProxy } from "../support/registry-proxy.js"
import { imageRows, leftovers, nothingLeft } from "../support/state-leftovers.js"

let registry: TestRegistry
let work: string
let kernel: { kernel: string; initrd: string }
let bigLayer: BuiltLayer

/** Incompressible bytes, so a layer is as large on the wire as on disk. */
const noise = (bytes: number) => {
  const out = Buffer.alloc(bytes)
  let x = 0x12345678
  for (let i = 0; i < bytes; i += 4) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out.writeInt32LE(x | 0, i)
  }
  return out
}

beforeAll(async () => {
  registry = await startRegistry()
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-failures-"))
  kernel = await findCloudKernel()
  const entries: ReadonlyArray<LayerEntrySpec> = [
    { type: "directory", name: "data" },
    { type: "file", name: "data/noise", content: noise(8 << 20) }
  ]
  bigLayer = await buildLayer(entries, "gzip")
  const small = await buildLayer([{ type: "file", name: "hello", content: "hi\n" }], "gzip")
  await pushImage(registry, "app", "1", { layers: [small, bigLayer] })
})

afterAll(async () => {
  await registry?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

let counter = 0
const freshState = () => path.join(work, `state-${++counter}`)

/** A fresh state dir with its own daemon for the duration of `body`. */
const withState = (body: (state: string) => Promise<void>) => {
  const state = freshState()
  return withBangerDaemon(state, () => body(state))
}

const pullArgs = (state: string, host: string, extra: ReadonlyArray<string> = []) => [
  "--state-dir",
  state,
  "image",
  "pull",
  `${host}/app:1`,
  "--kernel",
  kernel.kernel,
  ...extra
]

const withProxy = async <A>(fault: BlobFault, body: (host: string, blobGets: () => number) => Promise<A>) => {
  const proxy = await startRegistryProxy(registry, { fault, faultAfterBytes: 1 << 20 })
  try {
    return await body(proxy.host, proxy.blobGets)
  } finally {
    await proxy.stop()
  }
}

const waitFor = async (condition: () => boolean, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for the pull to get under way")
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe("banger image pull failures", () => {
  it("refuses a taken name before any download", async () => {
    await withState(async (state) => {
      expect((await runBanger(pullArgs(state, registry.host))).code).toBe(0)
      await withProxy("none", async (host, blobGets) => {
        const result = await runBanger(pullArgs(state, host, ["--name", "app-1"]))
        expectOneLineError(result, /^banger: image "app-1" already exists/)
        expect(blobGets()).toBe(0)
      })
      expect(imageRows(state).map((row) => row.name)).toEqual(["app-1"])
      expect(leftovers(state)).toEqual(nothingLeft)
    })
  })

  it("without a kernel names both options and downloads nothing", async () => {
    await withState(async (state) => {
      await withProxy("none", async (host, blobGets) => {
        const result = await runBanger(["--state-dir", state, "image", "pull", `${host}/app:1`])
        expectOneLineError(result, /--kernel PATH.*--kernel-ref NAME/)
        expect(blobGets()).toBe(0)
      })
      expect(imageRows(state)).toEqual([])
    })
  })

  it("reports --json errors as an object on stdout", async () => {
    await withState(async (state) => {
      const result = await runBanger(["--state-dir", state, "image", "pull", "user/UPPER", "--json"])
      expect(result.code).not.toBe(0)
      const parsed = JSON.parse(result.stdout)
      expect(parsed.error._tag).toBe("InvalidReference")
      expect(parsed.error.message).toMatch(/lowercase/)
    })
  })

  it("a registry dying mid-layer fails cleanly: no staging, temp tree, partial blob or row", async () => {
    await withState(async (state) => {
      const proxy = await startRegistryProxy(registry, { fault: "stall", faultAfterBytes: 1 << 20 })
      const running = startBanger(pullArgs(state, proxy.host))
      await waitFor(() => leftovers(state).blobTmp.length > 0)
      // The registry goes away for good: open connections die, new ones are refused.
      await proxy.stop()
      const result = await running.result
      expectOneLineError(result, /^banger: registry error/)
      expect(imageRows(state)).toEqual([])
      expect(leftovers(state)).toEqual(nothingLeft)
      expect(fs.existsSync(path.join(state, "cache/blobs", ...bigLayer.digest.split(":")))).toBe(false)
    })
  })

  it("a corrupted blob is a DigestMismatch and is never cached", async () => {
    await withState(async (state) => {
      await withProxy("corrupt", async (host) => {
        const result = await runBanger(pullArgs(state, host))
        expectOneLineError(result, /^banger: digest mismatch/)
      })
      expect(imageRows(state)).toEqual([])
      expect(leftovers(state)).toEqual(nothingLeft)
      expect(fs.existsSync(path.join(state, "cache/blobs", ...bigLayer.digest.split(":")))).toBe(false)
    })
  })

  it("--size smaller than the tree is refused before mkfs, leaving nothing", async () => {
    await withState(async (state) => {
      const result = await runBanger(pullArgs(state, registry.host, ["--size", "4M"]))
      expectOneLineError(result, /^banger: size 4194304 bytes is too small/)
      expect(imageRows(state)).toEqual([])
      expect(leftovers(state)).toEqual(nothingLeft)
    })
  })

  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    it(`an interrupted pull (${signal} to the CLI) cancels the operation and rolls back everything`, async () => {
      await withState(async (state) => {
        await withProxy("stall", async (host) => {
          const running = startBanger(pullArgs(state, host))
          // Wait until the download is under way: the staging dir and a partial blob exist.
          await waitFor(() => {
            const now = leftovers(state)
            return now.staging.length > 0 && now.blobTmp.length > 0
          })
          expect(leftovers(state).staging).toHaveLength(1)
          running.child.kill(signal)
          const result = await running.result
          // Interrupted, not crashed: the operation was cancelled and its rollback awaited.
          expect(result.code).toBe(130)
          expect(result.stderr).not.toContain("internal error")
        })
        expect(imageRows(state)).toEqual([])
        expect(leftovers(state)).toEqual(nothingLeft)
        const ops = JSON.parse((await runBanger(["--state-dir", state, "op", "list", "--json"])).stdout)
        expect(ops.map((op: { state: string }) => op.state)).toEqual(["cancelled"])
      })
    })
  }

  it("a daemon killed with -9 mid-pull: the next daemon sweeps every leftover and marks the op failed", async () => {
    const state = freshState()
    const daemon = await startBangerDaemon(state)
    let operation: string
    await withProxy("stall", async (host) => {
      const detached = await runBanger([...pullArgs(state, host), "--detach"])
      expect(detached.code).toBe(0)
      operation = detached.stdout.trim()
      await waitFor(() => leftovers(state).blobTmp.length > 0)
      await daemon.kill()
    })
    const left = leftovers(state)
    expect(left.staging.length + left.blobTmp.length).toBeGreaterThan(0)
    await withBangerDaemon(state, async () => {
      const list = await runBanger(["--state-dir", state, "image", "list", "--json"])
      expect(list.code).toBe(0)
      expect(JSON.parse(list.stdout)).toEqual([])
      const status = JSON.parse((await runBanger(["--state-dir", state, "op", "status", operation, "--json"])).stdout)
      expect(status.state).toBe("failed")
    })
    expect(leftovers(state)).toEqual(nothingLeft)
  })
})
