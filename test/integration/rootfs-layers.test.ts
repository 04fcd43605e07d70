/**
 * The directory-to-layer writer on a tree with every awkward thing a distribution can hold, checked
 * by round-tripping through GNU tar (as root) and by reading the headers back with tar-stream.
 */

import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as zlib from "node:zlib"
import * as tar from "tar-stream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  applyLayersWithTar,
  type LayerFile,
  layerFromDirectory,
  loadBuiltLayer,
  opaqueWhiteout,
  whiteout
} from "../support/rootfs-layers.js"
import { diffSnapshots, snapshotTree } from "../support/tree-snapshot.js"

let work: string
let tree: string
let socketServer: net.Server

const LONG_COMPONENT = "n".repeat(200)
const DEEP = Array.from({ length: 12 }, (_, i) => `level-${i}-${"d".repeat(20)}`).join("/")
const UNICODE = "ünïcødé-ファイル.txt"
const LONG_TARGET = `${"../".repeat(10)}${"t".repeat(140)}`
const T0 = 1_600_000_000

const must = (command: string, ...args: Array<string>) => {
  const result = spawnSync(command, args)
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")}: ${result.stderr}`)
}

beforeAll(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), "banger-layers-"))
  tree = path.join(work, "tree")
  const at = (p: string) => path.join(tree, p)
  await fs.mkdir(at("dev"), { recursive: true })
  await fs.mkdir(at(DEEP), { recursive: true })
  await fs.mkdir(at("a"))
  await fs.mkdir(at("b"))
  await fs.mkdir(at("setgid-dir"))
  await fs.mkdir(at("sticky"))
  await fs.mkdir(at("opaque/inner"), { recursive: true })
  await fs.writeFile(at("plain"), "hello\n")
  await fs.writeFile(at("empty"), "")
  await fs.writeFile(at("zero-mode"), "secret")
  await fs.writeFile(at("setuid"), "#!/bin/sh\n")
  await fs.writeFile(at("owned"), "x")
  await fs.writeFile(at("big-ids"), "y")
  await fs.writeFile(at("mid-ids"), "z")
  await fs.writeFile(at(UNICODE), "unicode")
  await fs.writeFile(at(`${DEEP}/${LONG_COMPONENT}`), "deep and long")
  await fs.writeFile(at("a/hl1"), Buffer.alloc(300_000, 7))
  await fs.link(at("a/hl1"), at("b/hl2"))
  await fs.link(at("a/hl1"), at(`${DEEP}/hl3`))
  await fs.writeFile(at("opaque/inner/file"), "z")
  await fs.symlink("plain", at("link-rel"))
  await fs.symlink("/etc/passwd", at("link-abs"))
  await fs.symlink(LONG_TARGET, at("link-long"))
  must("mknod", at("dev/null-like"), "c", "1", "3")
  must("mknod", at("dev/blk"), "b", "8", "1")
  // Past the 8-bit major / minor of old dev_t: exercises the full split. (262143 is the largest
  // minor tar-stream's fields hold; see the extra entry with a larger one below.)
  must("mknod", at("dev/big"), "b", "4095", "262143")
  must("mkfifo", at("fifo"))
  await fs.chmod(at("zero-mode"), 0)
  await fs.chmod(at("setuid"), 0o4755)
  await fs.chmod(at("setgid-dir"), 0o2775)
  await fs.chmod(at("sticky"), 0o1777)
  await fs.chown(at("owned"), 1000, 1001)
  await fs.chown(at("setgid-dir"), 0, 50)
  await fs.chown(at("big-ids"), 3_000_000, 4_000_000)
  // Fits ustar's 7 octal digits but not tar-stream's 6.
  await fs.chown(at("mid-ids"), 300_000, 262_144)
  await fs.lchown(at("link-rel"), 7, 8)
  socketServer = net.createServer()
  await new Promise<void>((resolve) => socketServer.listen(at("socket"), resolve))
  // Fixed mtimes everywhere, directories last so creating children does not bump them.
  const all = (await snapshotTree(tree, { contents: false })).keys()
  const paths = [...all].sort((x, y) => y.length - x.length)
  for (const p of paths) await fs.lutimes(at(p), T0, T0 + p.length)
}, 60_000)

afterAll(async () => {
  await new Promise((resolve) => socketServer?.close(resolve))
  if (work) await fs.rm(work, { recursive: true, force: true })
})

const sha256File = async (file: string, gunzip = false) => {
  const hash = createHash("sha256")
  const source = gunzip ? createReadStream(file).pipe(zlib.createGunzip()) : createReadStream(file)
  for await (const chunk of source) hash.update(chunk as Buffer)
  return `sha256:${hash.digest("hex")}`
}

interface ReadEntry {
  readonly header: tar.Header
  readonly body: Buffer
}

/** The entries as a reader sees them (PAX already applied by tar-stream). */
const readEntries = async (layer: LayerFile): Promise<Array<ReadEntry>> => {
  const extract = tar.extract()
  const entries: Array<ReadEntry> = []
  const source = createReadStream(layer.path)
  ;(layer.compression === "gzip" ? source.pipe(zlib.createGunzip()) : source).pipe(
    extract as unknown as NodeJS.WritableStream
  )
  for await (const entry of extract) {
    const chunks: Array<Buffer> = []
    for await (const chunk of entry) chunks.push(chunk as Buffer)
    entries.push({ header: entry.header, body: Buffer.concat(chunks) })
  }
  return entries
}

describe("layerFromDirectory", () => {
  it("round-trips every node type and attribute through GNU tar", async () => {
    const layer = await layerFromDirectory(tree, { output: path.join(work, "full.tar.gz") })
    expect(await sha256File(layer.path)).toBe(layer.digest)
    expect(await sha256File(layer.path, true)).toBe(layer.diffId)
    expect((await fs.stat(layer.path)).size).toBe(layer.size)

    const out = path.join(work, "full-out")
    await applyLayersWithTar([layer], out)
    // tar cannot carry sockets; everything else must match exactly.
    const expected = await snapshotTree(tree, { exclude: (p) => p === "socket" })
    const actual = await snapshotTree(out)
    expect(diffSnapshots(expected, actual)).toEqual([])
    // Guard against a vacuous comparison: the awkward cases are really in there.
    expect(expected.get("zero-mode")?.mode).toBe("0")
    expect(expected.get("setuid")?.mode).toBe("4755")
    expect(expected.get("big-ids")?.uid).toBe(3_000_000)
    expect(expected.get("mid-ids")?.uid).toBe(300_000)
    expect(expected.get("dev/big")?.type).toBe("block")
    expect(expected.get("b/hl2")?.linkGroup).toBe("a/hl1")
  })

  it("writes hardlinks as link entries, devices with major/minor, and no socket", async () => {
    const layer = await layerFromDirectory(tree, { output: path.join(work, "headers.tar"), compression: "none" })
    expect(layer.digest).toBe(layer.diffId)
    expect(layer.size).toBe(layer.uncompressedSize)
    expect(layer.mediaType).toBe("application/vnd.oci.image.layer.v1.tar")
    const entries = await readEntries(layer)
    const byName = new Map(entries.map((e) => [e.header.name.replace(/\/$/, ""), e.header]))
    expect(entries.length).toBe(layer.entries)
    expect(byName.get("a/hl1")).toMatchObject({ type: "file", size: 300_000 })
    expect(byName.get("b/hl2")).toMatchObject({ type: "link", linkname: "a/hl1", size: 0 })
    expect(byName.get(`${DEEP}/hl3`)).toMatchObject({ type: "link", linkname: "a/hl1" })
    expect(byName.get("dev/big")).toMatchObject({ type: "block-device", devmajor: 4095, devminor: 262143 })
    expect(byName.get("dev/null-like")).toMatchObject({ type: "character-device", devmajor: 1, devminor: 3 })
    expect(byName.get("link-long")).toMatchObject({ type: "symlink", linkname: LONG_TARGET })
    expect(byName.get(UNICODE)).toMatchObject({ type: "file", size: 7 })
    expect(byName.get(`${DEEP}/${LONG_COMPONENT}`)).toMatchObject({ type: "file" })
    // tar-stream's reader leaves PAX ids in .pax; GNU tar applied them in the round-trip test.
    expect(byName.get("big-ids")?.pax).toMatchObject({ uid: "3000000", gid: "4000000" })
    expect(byName.get("mid-ids")?.pax).toMatchObject({ uid: "300000", gid: "262144" })
    expect(byName.get("zero-mode")).toMatchObject({ mode: 0 })
    expect(byName.has("socket")).toBe(false)
    // Parents before children, as extractors expect.
    const names = entries.map((e) => e.header.name)
    expect(names.indexOf("a/")).toBeLessThan(names.indexOf("a/hl1"))
  })

  it("is deterministic for the same tree", async () => {
    const one = await layerFromDirectory(tree, { output: path.join(work, "det1.tar.gz") })
    const two = await layerFromDirectory(tree, { output: path.join(work, "det2.tar.gz") })
    expect([two.digest, two.diffId]).toEqual([one.digest, one.diffId])
  })

  it("prunes filtered directories and places extras after their parent's contents", async () => {
    const layer = await layerFromDirectory(tree, {
      output: path.join(work, "filtered.tar.gz"),
      filter: (p) => !p.startsWith("level-0") && p !== "b",
      extra: [
        { type: "file", name: "a/added", content: "extra", mode: 0o750, uid: 5, gid: 6 },
        whiteout("/plain"),
        opaqueWhiteout("opaque/"),
        { type: "file", name: "with-xattr", content: "x", xattrs: { "user.banger": "yes" } },
        { type: "directory", name: "not-in-tree/sub" },
        { type: "block", name: "not-in-tree/huge-dev", major: 4095, minor: 1_048_575 }
      ]
    })
    const entries = await readEntries(layer)
    const names = entries.map((e) => e.header.name)
    expect(names.filter((n) => n.startsWith("level-0") || n.startsWith("b/"))).toEqual([])
    expect(names).toContain(".wh.plain")
    expect(names).toContain("opaque/.wh..wh..opq")
    // a/added directly follows a's own contents and comes before anything outside a/.
    expect(names.indexOf("a/added")).toBe(names.indexOf("a/hl1") + 1)
    expect(names.slice(-4)).toEqual([".wh.plain", "with-xattr", "not-in-tree/sub", "not-in-tree/huge-dev"])
    const huge = entries.find((e) => e.header.name === "not-in-tree/huge-dev")!
    expect(huge.header).toMatchObject({ type: "block-device", devmajor: 4095, pax: { "SCHILY.devminor": "1048575" } })
    const added = entries.find((e) => e.header.name === "a/added")!
    expect(added.header).toMatchObject({ mode: 0o750, uid: 5, gid: 6, size: 5 })
    expect(added.body.toString()).toBe("extra")
    const withXattr = entries.find((e) => e.header.name === "with-xattr")!
    expect(withXattr.header.pax).toMatchObject({ "SCHILY.xattr.user.banger": "yes" })
    // With b/ filtered out, a/hl1's other links in this layer still point at a/hl1.
    expect(entries.find((e) => e.header.name === `${DEEP}/hl3`)).toBeUndefined()

    const built = await loadBuiltLayer(layer)
    expect(`sha256:${createHash("sha256").update(built.blob).digest("hex")}`).toBe(layer.digest)
    expect(`sha256:${createHash("sha256").update(built.tar).digest("hex")}`).toBe(layer.diffId)
  })

  it("keeps the first kept link as the file when the group's first path is filtered out", async () => {
    const layer = await layerFromDirectory(tree, {
      output: path.join(work, "links.tar.gz"),
      filter: (p) => p !== "a"
    })
    const byName = new Map((await readEntries(layer)).map((e) => [e.header.name, e.header]))
    expect(byName.has("a/hl1")).toBe(false)
    expect(byName.get("b/hl2")).toMatchObject({ type: "file", size: 300_000 })
    expect(byName.get(`${DEEP}/hl3`)).toMatchObject({ type: "link", linkname: "b/hl2" })
  })
})
