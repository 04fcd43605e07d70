/**
 * `banger catalog list` through the real CLI and daemon: the catalog from --catalog, from
 * BANGER_CATALOG and the built-in one; local state after `kernel register` of a catalog kernel's
 * name; a corrupt catalog as one `banger: …` line.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expectOneLineError, repoRoot, runBanger, withBangerDaemon } from "../support/banger-cli.js"
import { findCloudKernel } from "../support/qemu.js"

let work: string
let kernelFile: string

const testCatalog = {
  kernels: [
    {
      name: "tiny-kernel",
      ref: "localhost:5000/kernels/tiny:1",
      arch: "amd64",
      description: "test kernel",
      default: true
    },
    { name: "spare-kernel", ref: "localhost:5000/kernels/spare:2", arch: "amd64", description: "another" }
  ],
  images: [
    {
      name: "tiny-image",
      ref: "localhost:5000/images/tiny:1",
      kernel: "tiny-kernel",
      description: "test image",
      default: true
    }
  ]
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-catalog-cli-"))
  kernelFile = (await findCloudKernel()).kernel
  fs.writeFileSync(path.join(work, "test-catalog.json"), JSON.stringify(testCatalog, null, 2))
  fs.writeFileSync(path.join(work, "corrupt.json"), '{ "kernels": [ {"name": ')
  const twoDefaults = structuredClone(testCatalog)
  twoDefaults.kernels[1]!.default = true
  fs.writeFileSync(path.join(work, "two-defaults.json"), JSON.stringify(twoDefaults))
})

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

type Listing = {
  source: string
  kernels: Array<{ name: string; ref: string; default: boolean; local: string; localRef: string | null }>
  images: Array<{ name: string; kernel: string; default: boolean; local: string }>
}

describe("banger catalog list (CLI → daemon)", () => {
  it("lists the --catalog, BANGER_CATALOG and built-in catalogs with local state", async () => {
    const state = path.join(work, "state")
    const catalogFile = path.join(work, "test-catalog.json")
    await withBangerDaemon(state, async () => {
      const banger = (args: Array<string>, options: { env?: Record<string, string>; cwd?: string } = {}) =>
        runBanger(["--state-dir", state, ...args], options)

      // A relative --catalog is the CLI's working directory's, not the daemon's.
      const viaOption = await banger(["--catalog", "test-catalog.json", "catalog", "list", "--json"], { cwd: work })
      expect(viaOption.code, viaOption.stderr).toBe(0)
      const listed = JSON.parse(viaOption.stdout) as Listing
      expect(listed.source).toBe(catalogFile)
      expect(listed.kernels.map((k) => [k.name, k.ref, k.default, k.local])).toEqual([
        ["tiny-kernel", "localhost:5000/kernels/tiny:1", true, "no"],
        ["spare-kernel", "localhost:5000/kernels/spare:2", false, "no"]
      ])
      expect(listed.images.map((i) => [i.name, i.kernel, i.default, i.local])).toEqual([
        ["tiny-image", "tiny-kernel", true, "no"]
      ])

      const registered = await banger(["kernel", "register", "tiny-kernel", "--kernel", kernelFile])
      expect(registered.code, registered.stderr).toBe(0)

      const viaEnv = await banger(["catalog", "list", "--json"], { env: { BANGER_CATALOG: catalogFile } })
      expect(viaEnv.code, viaEnv.stderr).toBe(0)
      const after = JSON.parse(viaEnv.stdout) as Listing
      expect(after.source).toBe(catalogFile)
      // Registered from a path, so it is local under that name but not from the entry's ref.
      expect(after.kernels.map((k) => [k.name, k.local, k.localRef])).toEqual([
        ["tiny-kernel", "other-ref", null],
        ["spare-kernel", "no", null]
      ])

      const text = await banger(["catalog", "list"], { env: { BANGER_CATALOG: catalogFile } })
      expect(text.code, text.stderr).toBe(0)
      const lines = text.stdout.split("\n")
      expect(lines[0]).toBe(`catalog: ${catalogFile}`)
      const kernelsAt = lines.indexOf("KERNELS")
      const imagesAt = lines.indexOf("IMAGES")
      expect(kernelsAt).toBeGreaterThan(0)
      expect(imagesAt).toBeGreaterThan(kernelsAt)
      expect(lines[kernelsAt + 1]!.split(/\s{2,}/)).toEqual(["NAME", "REF", "DEFAULT", "LOCAL", "DESCRIPTION"])
      expect(lines[kernelsAt + 2]!.split(/\s{2,}/)).toEqual([
        "tiny-kernel",
        "localhost:5000/kernels/tiny:1",
        "*",
        "yes, other ref",
        "test kernel"
      ])
      expect(lines[kernelsAt + 3]!.split(/\s{2,}/)).toEqual([
        "spare-kernel",
        "localhost:5000/kernels/spare:2",
        "no",
        "another"
      ])
      expect(lines[imagesAt + 1]!.split(/\s{2,}/)).toEqual(["NAME", "REF", "DEFAULT", "LOCAL", "KERNEL", "DESCRIPTION"])
      expect(lines[imagesAt + 2]!.split(/\s{2,}/)).toEqual([
        "tiny-image",
        "localhost:5000/images/tiny:1",
        "*",
        "no",
        "tiny-kernel",
        "test image"
      ])

      // --catalog wins over BANGER_CATALOG; with neither, the daemon's built-in catalog.json.
      const both = await banger(["--catalog", catalogFile, "catalog", "list", "--json"], {
        env: { BANGER_CATALOG: path.join(work, "corrupt.json") }
      })
      expect(both.code, both.stderr).toBe(0)
      expect((JSON.parse(both.stdout) as Listing).source).toBe(catalogFile)
      const builtin = await banger(["catalog", "list", "--json"])
      expect(builtin.code, builtin.stderr).toBe(0)
      const shipped = JSON.parse(builtin.stdout) as Listing
      expect(shipped.source).toBe(path.join(repoRoot, "catalog.json"))
      expect(shipped.kernels.find((k) => k.default)?.name).toBe("ignite-5.10.51")
    })
  })

  it("a corrupt or rule-breaking catalog is one banger: line and a non-zero exit", async () => {
    const state = path.join(work, "state-bad")
    await withBangerDaemon(state, async () => {
      const corrupt = path.join(work, "corrupt.json")
      const viaOption = await runBanger(["--state-dir", state, "--catalog", corrupt, "catalog", "list"])
      expectOneLineError(viaOption, new RegExp(`^banger: invalid catalog ${corrupt}: not JSON: `))

      const viaEnv = await runBanger(["--state-dir", state, "catalog", "list"], {
        env: { BANGER_CATALOG: path.join(work, "two-defaults.json") }
      })
      expectOneLineError(
        viaEnv,
        /^banger: invalid catalog .*two-defaults\.json: kernels\[1\] \(spare-kernel\)\.default: a second default \(kernels\[0\] \(tiny-kernel\) is one\)$/
      )

      const missing = path.join(work, "no-such-catalog.json")
      const absent = await runBanger(["--state-dir", state, "--catalog", missing, "catalog", "list"])
      expectOneLineError(absent, new RegExp(`^banger: invalid catalog ${missing}: no such file$`))

      const asJson = await runBanger(["--state-dir", state, "--catalog", corrupt, "catalog", "list", "--json"])
      expect(asJson.code).not.toBe(0)
      expect(JSON.parse(asJson.stdout).error._tag).toBe("CatalogInvalid")
    })
  })
})
