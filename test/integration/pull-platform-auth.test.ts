/**
 * Through the CLI and daemon: platform selection from a multi-platform index (and the error
 * listing what it offers), and pulls from registries that demand basic or token auth, with
 * credentials from the daemon's DOCKER_CONFIG.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { runBanger, withBangerDaemon } from "../support/banger-cli.js"
import { inspectImage, readFileFromImage } from "../support/ext4-inspect.js"
import { buildLayer } from "../support/layers.js"
import { findCloudKernel } from "../support/qemu.js"
import {
  basicAuthEntry,
  pushImage,
  pushIndex,
  startRegistry,
  type TestRegistry,
  writeDockerConfig
} from "../support/registry.js"

let work: string
let kernel: string
const registries: Array<TestRegistry> = []
const cleanups: Array<() => Promise<void>> = []

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-platform-"))
  kernel = (await findCloudKernel()).kernel
})

afterAll(async () => {
  for (const cleanup of cleanups) await cleanup()
  for (const registry of registries) await registry.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

const archFile = async (arch: string) =>
  buildLayer([{ type: "file", name: "arch", content: `${arch}\n` }], arch === "amd64" ? "gzip" : "zstd")

const pullArgs = (state: string, ref: string, ...extra: Array<string>) => [
  "--state-dir",
  state,
  "image",
  "pull",
  ref,
  "--kernel",
  kernel,
  "--json",
  ...extra
]

const contentOf = (rootfs: string, file: string) =>
  Effect.runPromise(readFileFromImage(rootfs, file).pipe(Effect.provide(NodeContext.layer))).then(String)

describe("platforms and registry auth through the CLI", () => {
  it("picks the platform from an index, and lists the offers when it is missing", async () => {
    const registry = await startRegistry()
    registries.push(registry)
    const amd64 = await pushImage(registry, "multi", undefined, { layers: [await archFile("amd64")] })
    const arm64 = await pushImage(registry, "multi", undefined, {
      layers: [await archFile("arm64")],
      platform: { os: "linux", architecture: "arm64", variant: "v8" }
    })
    await pushIndex(registry, "multi", "1", [
      { platform: amd64.platform, manifestDigest: amd64.digest, size: amd64.size },
      { platform: arm64.platform, manifestDigest: arm64.digest, size: arm64.size }
    ])
    const state = path.join(work, "state-platform")
    await withBangerDaemon(state, async () => {
      const ref = `${registry.host}/multi:1`
      const byDefault = JSON.parse((await runBanger(pullArgs(state, ref))).stdout)
      expect(byDefault.platform).toBe("linux/amd64")
      expect(byDefault.manifestDigest).toBe(amd64.digest)
      expect(await contentOf(byDefault.rootfs, "arch")).toBe("amd64\n")

      const arm = JSON.parse(
        (await runBanger(pullArgs(state, ref, "--platform", "linux/aarch64", "--name", "arm"))).stdout
      )
      expect(arm.platform).toBe("linux/arm64/v8")
      expect(arm.manifestDigest).toBe(arm64.digest)
      expect(await contentOf(arm.rootfs, "arch")).toBe("arm64\n")

      const missing = await runBanger(pullArgs(state, ref, "--platform", "linux/s390x", "--name", "s390x"))
      expect(missing.code).not.toBe(0)
      expect(JSON.parse(missing.stdout).error).toEqual({
        _tag: "PlatformNotFound",
        message: `${ref} has no linux/s390x image (offers: linux/amd64, linux/arm64/v8)`
      })
    })
  })

  for (const auth of ["basic", "token"] as const) {
    it(`pulls from a registry with ${auth} auth using the daemon's DOCKER_CONFIG`, async () => {
      const registry = await startRegistry({ auth })
      registries.push(registry)
      await pushImage(registry, "private", "1", { layers: [await archFile("amd64")] })
      const config = await writeDockerConfig({ [registry.host]: basicAuthEntry(registry.credentials!) })
      cleanups.push(config.cleanup)
      const ref = `${registry.host}/private:1`

      const denied = path.join(work, `state-${auth}-denied`)
      await withBangerDaemon(
        denied,
        async () => {
          const result = await runBanger(pullArgs(denied, ref))
          expect(result.code).not.toBe(0)
          expect(JSON.parse(result.stdout).error.message).toMatch(/unauthorized/)
        },
        { env: { DOCKER_CONFIG: path.join(work, "no-such-config") } }
      )

      const state = path.join(work, `state-${auth}`)
      await withBangerDaemon(
        state,
        async () => {
          const result = await runBanger(pullArgs(state, ref))
          expect(result.code, result.stdout).toBe(0)
          const image = JSON.parse(result.stdout)
          const entries = await Effect.runPromise(inspectImage(image.rootfs).pipe(Effect.provide(NodeContext.layer)))
          expect(entries.map((entry) => entry.path)).toContain("arch")
        },
        { env: { DOCKER_CONFIG: config.dir } }
      )
    })
  }
})
