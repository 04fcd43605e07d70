/**
 * The blob cache remembers each layer's checked DiffID (`<state>/cache/diff-ids/<alg>/<hex>`):
 * a later `banger image pull` of the same blobs does not hash their uncompressed bytes again, but a
 * manifest that claims another DiffID for a remembered blob is still checked, and refused.
 *
 * The daemon hashes DiffIDs with openssl here (BANGER_DIGEST=openssl) and finds it on PATH, so a
 * wrapper in front of the real one logs each DiffID hash (`openssl dgst -<alg> -r` reading stdin;
 * blob digests name a file instead).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expectOneLineError, runBanger, withBangerDaemon } from "../support/banger-cli.js"
import { type BuiltLayer, buildLayer, sha256 } from "../support/layers.js"
import { findCloudKernel } from "../support/qemu.js"
import { pushImage, startRegistry, type TestRegistry } from "../support/registry.js"
import { imageRows, leftovers, nothingLeft } from "../support/state-leftovers.js"

let registry: TestRegistry
let work: string
let kernel: string
let wrapperDir: string
let hashLog: string
let layers: ReadonlyArray<BuiltLayer>

beforeAll(async () => {
  registry = await startRegistry()
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-diff-ids-"))
  kernel = (await findCloudKernel()).kernel
  layers = [
    await buildLayer([{ type: "file", name: "hello", content: "hi\n" }], "gzip"),
    await buildLayer(
      [
        { type: "directory", name: "etc" },
        { type: "file", name: "etc/motd", content: "motd\n" }
      ],
      "zstd"
    )
  ]
  await pushImage(registry, "app", "1", { layers })
  // The same blobs, but the config claims another DiffID for the second.
  const claimed = [layers[0]!.diffId, sha256(Buffer.from("not the content"))]
  await pushImage(registry, "app", "liar", { layers, config: { rootfs: { type: "layers", diff_ids: claimed } } })
  wrapperDir = path.join(work, "bin")
  hashLog = path.join(work, "openssl.log")
  fs.mkdirSync(wrapperDir)
  const realOpenssl = process.env
    .PATH!.split(":")
    .map((dir) => path.join(dir, "openssl"))
    .find((file) => fs.existsSync(file))!
  fs.writeFileSync(
    path.join(wrapperDir, "openssl"),
    `#!/bin/sh\n[ "$#" -eq 3 ] && [ "$1" = dgst ] && echo "$*" >> '${hashLog}'\nexec '${realOpenssl}' "$@"\n`,
    { mode: 0o755 }
  )
})

afterAll(async () => {
  await registry?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

const pull = (state: string, tag: string, name: string) =>
  runBanger(["--state-dir", state, "image", "pull", `${registry.host}/app:${tag}`, "--name", name, "--kernel", kernel])

const diffIdHashes = () => (fs.existsSync(hashLog) ? fs.readFileSync(hashLog, "utf8").split("\n").length - 1 : 0)

const remembered = (state: string, digest: string) =>
  fs.readFileSync(path.join(state, "cache", "diff-ids", ...digest.split(":")), "utf8")

describe("remembered DiffIDs", () => {
  it("a second pull of cached blobs hashes none; another claim for one of them is checked and refused", async () => {
    const state = path.join(work, "state")
    await withBangerDaemon(
      state,
      async () => {
        expect((await pull(state, "1", "first")).code).toBe(0)
        expect(diffIdHashes()).toBe(2)
        for (const layer of layers) expect(remembered(state, layer.digest)).toBe(layer.diffId)

        expect((await pull(state, "1", "second")).code).toBe(0)
        expect(diffIdHashes()).toBe(2)

        const liar = await pull(state, "liar", "liar")
        expectOneLineError(liar, /^banger: digest mismatch.*does not match its DiffID/)
        // Only the layer whose claim changed was hashed.
        expect(diffIdHashes()).toBe(3)
        expect(remembered(state, layers[1]!.digest)).toBe(layers[1]!.diffId)
        expect(
          imageRows(state)
            .map((row) => row.name)
            .sort()
        ).toEqual(["first", "second"])
        expect(leftovers(state)).toEqual(nothingLeft)
      },
      { env: { PATH: `${wrapperDir}:${process.env.PATH}`, BANGER_DIGEST: "openssl" } }
    )
  })
})
