/**
 * `banger vm create` with nothing local, through the real CLI and daemon, a real registry and QEMU
 * TCG: a test catalog whose default kernel is the host's Debian cloud kernel published as an OCI
 * image (bzImage, initrd, /lib/modules tree) and whose default image is a busybox scratch image.
 * One operation pulls the kernel, then the image, then makes and boots the VM; a Ctrl-C (or an
 * `op cancel`) while the image's layer is held leaves nothing but the blob cache's verified blobs;
 * two creates racing to pull the same catalog image both succeed; a catalog image the registry
 * lacks fails in one line after rolling back the kernel pulled for it.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import Database from "better-sqlite3"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expectOneLineError, isProgressLine, runBanger, startBanger, withBangerDaemon } from "../support/banger-cli.js"
import { buildLayer } from "../support/layers.js"
import { findCloudKernel } from "../support/qemu.js"
import { pushImage, startRegistry, type TestRegistry } from "../support/registry.js"

import { startRegistryProxy } from "../support/registry-proxy.js"
import { layerFromDirectory } from "../support/rootfs-layers.js"
import { imageRows, leftovers, nothingLeft } from "../support/state-leftovers.js"
import { qemuProcessesNaming } from "../support/vm-processes.js"

let registry: TestRegistry
let work: string
let host: Awaited<ReturnType<typeof findCloudKernel>>
let kernelLayerDigest: string
let imageLayerDigest: string

const list = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [])

const rows = (state: string, table: "vms" | "kernels"): Array<{ name: string }> => {
  const file = path.join(state, "banger.db")
  if (!fs.existsSync(file)) return []
  const db = new Database(file, { readonly: true })
  try {
    return db.prepare(`SELECT name FROM ${table} ORDER BY name`).all() as Array<{ name: string }>
  } finally {
    db.close()
  }
}

/** QEMU processes whose command line names this test's work dir. */
const vmmProcesses = () => qemuProcessesNaming(work)

const until = async (
  what: string,
  check: () => boolean | Promise<boolean>,
  detail: () => string,
  timeoutMs: number
) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${detail()}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

const writeCatalog = (file: string, imageRegistry: string) => {
  fs.writeFileSync(
    file,
    JSON.stringify({
      kernels: [
        {
          name: "cloud-kernel",
          ref: `${registry.host}/kernels/cloud:1`,
          arch: "x86_64",
          description: "the host's Debian cloud kernel",
          default: true
        }
      ],
      images: [
        {
          name: "scratch-dev",
          ref: `${imageRegistry}/scratch-app:1`,
          kernel: "cloud-kernel",
          description: "busybox on scratch",
          default: true
        }
      ]
    })
  )
  return file
}

/** A state dir holds nothing but the database, the blob cache and empty store dirs. */
const expectEmptyStore = (state: string) => {
  expect(rows(state, "vms")).toEqual([])
  expect(rows(state, "kernels")).toEqual([])
  expect(imageRows(state)).toEqual([])
  expect(list(path.join(state, "vms"))).toEqual([])
  expect(list(path.join(state, "kernels"))).toEqual([])
  expect(leftovers(state)).toEqual(nothingLeft)
}

beforeAll(async () => {
  registry = await startRegistry()
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-vm-catalog-"))
  host = await findCloudKernel()

  // The kernel image: the host's own files, read in place (Debian's /lib is a link to usr/lib, so
  // the image is usrmerged like the host and the pull must follow its /lib inside the image).
  const wanted = [
    `boot/vmlinuz-${host.version}`,
    `boot/initrd.img-${host.version}`,
    "lib",
    `usr/lib/modules/${host.version}`
  ]
  const kernelLayer = await layerFromDirectory("/", {
    output: path.join(work, "kernel.tar.gz"),
    level: 1,
    filter: (rel) => wanted.some((want) => rel === want || rel.startsWith(`${want}/`) || want.startsWith(`${rel}/`))
  })
  kernelLayerDigest = kernelLayer.digest
  await pushImage(registry, "kernels/cloud", "1", { layers: [kernelLayer] })

  // The image: one static busybox, run by the built-in init through Entrypoint + Cmd.
  const app = await buildLayer([
    { type: "directory", name: "bin" },
    { type: "file", name: "bin/busybox", mode: 0o755, content: fs.readFileSync("/bin/busybox") },
    { type: "directory", name: "work" }
  ])
  imageLayerDigest = app.digest
  await pushImage(registry, "scratch-app", "1", {
    layers: [app],
    config: {
      config: {
        Entrypoint: ["/bin/busybox", "sh", "-c"],
        Cmd: ['echo "catalog app up on $(/bin/busybox hostname)"; exec /bin/busybox sleep 100000'],
        Env: ["PATH=/bin"],
        WorkingDir: "/work"
      }
    }
  })
}, 600_000)

afterAll(async () => {
  // Whatever a failed assertion left running: this test's VMMs, by pid.
  for (const pid of vmmProcesses()) process.kill(pid, "SIGKILL")
  await registry?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

// In the host's namespace: no taps there (vm-network tests networking inside its own namespace).
const createArgs = ["vm", "create", "dev", "--accel", "tcg", "--memory", "256", "--disk-size", "1G", "--no-network"]

describe("banger vm create from the catalog", () => {
  it("with nothing local, one operation pulls the catalog kernel and image, then boots the VM", async () => {
    const state = path.join(work, "state-create")
    const catalog = writeCatalog(path.join(work, "catalog.json"), registry.host)
    await withBangerDaemon(state, async () => {
      // BANGER_CATALOG here; the cancel test below uses --catalog.
      const banger = (...args: Array<string>) =>
        runBanger(["--state-dir", state, ...args], { env: { BANGER_CATALOG: catalog }, timeoutMs: 900_000 })
      const json = async <A = Record<string, unknown>>(...args: Array<string>): Promise<A> => {
        const result = await banger(...args, "--json")
        if (result.code !== 0) throw new Error(`banger ${args.join(" ")}: ${result.stderr}`)
        return JSON.parse(result.stdout) as A
      }

      const created = await banger(...createArgs)
      expect(created.code, created.stderr).toBe(0)
      expect(created.stdout).toBe("dev running (qemu, tcg)\n")
      // Each phase's header, in order, with its own stages and downloaded layer under it: no stage
      // of one phase is replayed under the next one's header.
      const raw = created.stderr.split("\n").filter((line) => line !== "")
      // Every line is a `banger: …` progress line, no error among them.
      expect(
        raw.filter((line) => !isProgressLine(line)),
        created.stderr
      ).toEqual([])
      const lines = raw.map((line) => line.slice("banger: ".length))
      const kernelPhase = lines.slice(0, lines.indexOf("image scratch-dev"))
      const imagePhase = lines.slice(lines.indexOf("image scratch-dev"), lines.indexOf("vm dev"))
      const vmPhase = lines.slice(lines.indexOf("vm dev"))
      expect(kernelPhase[0], created.stderr).toBe("kernel cloud-kernel")
      expect(imagePhase[0], created.stderr).toBe("image scratch-dev")
      expect(vmPhase[0], created.stderr).toBe("vm dev")
      expect(
        kernelPhase.filter((line) => line === "publishing…"),
        created.stderr
      ).toHaveLength(1)
      expect(
        imagePhase.filter((line) => line === "publishing…"),
        created.stderr
      ).toHaveLength(1)
      expect(
        kernelPhase.filter((line) => line.startsWith("layer 1/1 ")),
        created.stderr
      ).toHaveLength(1)
      expect(
        imagePhase.filter((line) => line.startsWith("layer 1/1 ")),
        created.stderr
      ).toHaveLength(1)
      expect(kernelPhase).toContain("extracting the kernel…")
      expect(vmPhase.slice(1), created.stderr).toEqual([
        "making the work disk…",
        "configuring the guest…",
        "booting…",
        "waiting for the guest to be ready…"
      ])

      const ops = await json<Array<{ kind: string; state: string; target: string }>>("op", "list")
      expect(ops).toEqual([expect.objectContaining({ kind: "vm.create", state: "succeeded", target: "dev" })])

      const logs = await banger("vm", "logs", "dev")
      expect(logs.stdout).toContain("banger: dev ready")
      await until(
        "the image's command",
        async () => (await banger("vm", "logs", "dev")).stdout.includes("catalog app up on dev"),
        () => "",
        120_000
      )

      const images = await json<Array<Record<string, unknown>>>("image", "list")
      expect(images).toEqual([
        expect.objectContaining({
          name: "scratch-dev",
          ref: `${registry.host}/scratch-app:1`,
          kernelName: "cloud-kernel"
        })
      ])
      const kernels = await json<Array<Record<string, unknown>>>("kernel", "list")
      expect(kernels).toEqual([
        expect.objectContaining({
          name: "cloud-kernel",
          ref: `${registry.host}/kernels/cloud:1`,
          format: "bzImage",
          version: host.version
        })
      ])
      const kernel = kernels[0]!
      expect(fs.readFileSync(kernel.kernel as string).equals(fs.readFileSync(host.kernel))).toBe(true)
      expect(fs.existsSync(path.join(kernel.modules as string, "modules.dep"))).toBe(true)
      const listed = await banger("image", "list")
      expect(listed.stdout).toMatch(/\nscratch-dev\s/)
      expect((await banger("kernel", "list")).stdout).toMatch(/\ncloud-kernel\s+bzImage\s/)

      const shown = await json("vm", "show", "dev")
      expect(shown).toMatchObject({ name: "dev", image: "scratch-dev", state: "running", vmm: "qemu" })
      expect(String(shown.vmmReason)).toMatch(/bzImage|firecracker/)
      const text = await banger("vm", "show", "dev")
      expect(text.stdout).toMatch(
        new RegExp(`vmm:\\s+qemu \\(${String(shown.vmmReason).replace(/[()[\].*+?]/g, "\\$&")}\\)`)
      )

      // The pulled kernel and image now belong to the VM.
      const refused = await banger("image", "delete", "scratch-dev")
      expect(refused.stderr).toMatch(/used by VM\(s\) dev/)
      const deleted = await banger("vm", "delete", "dev", "--force")
      expect(deleted.code, deleted.stderr).toBe(0)
      expect(vmmProcesses()).toEqual([])
      expect(list(path.join(state, "vms"))).toEqual([])
    })
  }, 900_000)

  it("Ctrl-C while the image's layer is held: the create is cancelled and rolls back kernel, image and VM", async () => {
    const state = path.join(work, "state-cancel")
    // The kernel comes straight from the registry; the image through a proxy that holds its blobs.
    const proxy = await startRegistryProxy(registry, { fault: "stall", faultDigests: [imageLayerDigest] })
    try {
      const catalog = writeCatalog(path.join(work, "catalog-cancel.json"), proxy.host)
      await withBangerDaemon(state, async () => {
        const running = startBanger(["--state-dir", state, "--catalog", catalog, ...createArgs], {
          timeoutMs: 600_000
        })
        await until(
          "the image's layer to be held",
          () =>
            list(path.join(state, "kernels")).includes("cloud-kernel") &&
            proxy.requests.some((request) => request.faulted && request.path.includes(imageLayerDigest)) &&
            leftovers(state).staging.length > 0,
          () => running.output().stderr,
          300_000
        )
        const during = await runBanger(["--state-dir", state, "op", "list", "--json"])
        expect(JSON.parse(during.stdout)).toEqual([
          expect.objectContaining({
            kind: "vm.create",
            state: "running",
            phase: { phase: "image", name: "scratch-dev" }
          })
        ])
        expect(rows(state, "kernels")).toEqual([{ name: "cloud-kernel" }])

        running.child.kill("SIGINT")
        const result = await running.result
        expect(result.code, result.stderr).toBe(130)
        expect(result.stderr).toMatch(/^banger: kernel cloud-kernel$/m)
        expect(result.stderr).toMatch(/^banger: image scratch-dev$/m)
        expect(result.stderr).not.toMatch(/^vm dev$/m)

        await until(
          "the operation to end",
          async () => {
            const ops = JSON.parse((await runBanger(["--state-dir", state, "op", "list", "--json"])).stdout)
            return ops[0]?.state !== "running"
          },
          () => "",
          60_000
        )
        const ops = JSON.parse((await runBanger(["--state-dir", state, "op", "list", "--json"])).stdout)
        expect(ops.map((op: { kind: string; state: string }) => `${op.kind} ${op.state}`)).toEqual([
          "vm.create cancelled"
        ])
        for (const what of ["vm", "image", "kernel"]) {
          const listed = await runBanger(["--state-dir", state, what, "list", "--json"])
          expect(JSON.parse(listed.stdout), what).toEqual([])
        }
        expectEmptyStore(state)
        expect(vmmProcesses()).toEqual([])
      })
    } finally {
      await proxy.stop()
    }
    expectEmptyStore(state)
    // Kept by design: the blob cache's verified blobs (the kernel's layer, fully downloaded), for the
    // next pull; never the image's partial layer.
    const cached = list(path.join(state, "cache", "blobs", "sha256"))
    expect(cached).toContain(kernelLayerDigest.replace("sha256:", ""))
    expect(cached).not.toContain(imageLayerDigest.replace("sha256:", ""))
  }, 900_000)

  it("two creates at once on a fresh host: both pull, one publishes the kernel and image, both use them", async () => {
    const state = path.join(work, "state-race")
    // The image's layer arrives over seconds: both creates are still pulling when one publishes.
    const proxy = await startRegistryProxy(registry, {
      fault: "trickle",
      faultDigests: [imageLayerDigest],
      trickleParts: 20,
      trickleIntervalMs: 250
    })
    const catalog = writeCatalog(path.join(work, "catalog-race.json"), proxy.host)
    await withBangerDaemon(state, async () => {
      const create = (vm: string) =>
        runBanger(
          [
            "--state-dir",
            state,
            "--catalog",
            catalog,
            "vm",
            "create",
            vm,
            "--no-start",
            "--disk-size",
            "1G",
            "--no-network"
          ],
          {
            timeoutMs: 600_000
          }
        )
      const [a, b] = await Promise.all([create("a"), create("b")])
      expect(a.code, a.stderr).toBe(0)
      expect(b.code, b.stderr).toBe(0)
      // Both really pulled (a create that found the image local would show no image phase).
      expect(a.stderr).toMatch(/^banger: image scratch-dev$/m)
      expect(b.stderr).toMatch(/^banger: image scratch-dev$/m)
      expect(a.stdout).toBe("a stopped (qemu)\n")
      expect(b.stdout).toBe("b stopped (qemu)\n")
      expect(rows(state, "vms")).toEqual([{ name: "a" }, { name: "b" }])
      expect(rows(state, "kernels")).toEqual([{ name: "cloud-kernel" }])
      expect(imageRows(state).map((row) => row.name)).toEqual(["scratch-dev"])
      expect(list(path.join(state, "kernels"))).toEqual(["cloud-kernel"])
      expect(leftovers(state)).toEqual(nothingLeft)
      for (const vm of ["a", "b"]) {
        const deleted = await runBanger(["--state-dir", state, "vm", "delete", vm])
        expect(deleted.code, deleted.stderr).toBe(0)
      }
    }).finally(() => proxy.stop())
  }, 900_000)

  it("a catalog image missing from the registry fails in one line; op cancel of a detached create rolls back", async () => {
    const state = path.join(work, "state-failures")
    const proxy = await startRegistryProxy(registry, { fault: "stall", faultDigests: [imageLayerDigest] })
    try {
      const missing = path.join(work, "catalog-missing.json")
      fs.writeFileSync(
        missing,
        fs.readFileSync(writeCatalog(missing, registry.host), "utf8").replace("/scratch-app:1", "/no-such-image:1")
      )
      const held = writeCatalog(path.join(work, "catalog-held.json"), proxy.host)
      await withBangerDaemon(state, async () => {
        const banger = (catalog: string, ...args: Array<string>) =>
          runBanger(["--state-dir", state, "--catalog", catalog, ...args])

        // The kernel is pulled first, then the image's manifest is not found: the kernel goes too.
        expectOneLineError(await banger(missing, ...createArgs), /^banger: registry error/)
        expectEmptyStore(state)

        const detached = await banger(held, ...createArgs, "--detach")
        expect(detached.code, detached.stderr).toBe(0)
        const id = detached.stdout.trim()
        await until(
          "the image's layer to be held",
          () => proxy.requests.some((request) => request.faulted) && leftovers(state).staging.length > 0,
          () => "",
          300_000
        )
        const cancelled = await banger(held, "op", "cancel", id, "--json")
        expect(cancelled.code, cancelled.stderr).toBe(0)
        expect(JSON.parse(cancelled.stdout)).toMatchObject({ id, kind: "vm.create", state: "cancelled" })
        expectEmptyStore(state)
        expect(vmmProcesses()).toEqual([])
        const ops = JSON.parse((await banger(held, "op", "list", "--json")).stdout)
        expect(ops.map((op: { kind: string; state: string }) => `${op.kind} ${op.state}`).sort()).toEqual([
          "vm.create cancelled",
          "vm.create failed"
        ])
      })
    } finally {
      await proxy.stop()
    }
    expectEmptyStore(state)
  }, 900_000)
})
