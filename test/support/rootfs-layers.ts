/**
 * Turns a real directory tree (e.g. the debootstrap fixture) into OCI layer blobs on disk. Whole
 * distributions are 100+ MB, so everything streams: one file at a time into tar-stream, through
 * gzip, into the blob file, with both digests computed on the way.
 *
 * Metadata comes from lstat, so run as root on a tree made by root to get real ownership.
 * Not carried: xattrs of the source tree (Node cannot read them; a minbase tree has none), sockets
 * (tar cannot hold them), sub-second mtimes.
 */

import { createHash } from "node:crypto"
import { createReadStream, createWriteStream, type Stats } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Transform } from "node:stream"
import { pipeline } from "node:stream/promises"
import * as zlib from "node:zlib"
import * as tar from "tar-stream"
import { run } from "./debian-rootfs.js"
import { pathInRoot } from "./ext4-image.js"
import type { BuiltLayer, LayerEntrySpec } from "./layers.js"
import { TEST_INIT_PATH, testInitScript } from "./qemu.js"

export type FileCompression = "gzip" | "none"

/** A layer blob on disk plus the descriptor fields a manifest and config need. */
export interface LayerFile {
  /** The blob as pushed: gzip-compressed tar (or the plain tar for "none"). */
  readonly path: string
  /** sha256 of the blob. */
  readonly digest: string
  /** sha256 of the uncompressed tar (the config's rootfs.diff_ids entry). */
  readonly diffId: string
  /** Blob size in bytes. */
  readonly size: number
  readonly uncompressedSize: number
  readonly mediaType: string
  readonly compression: FileCompression
  /** Tar entries written, extras included (PAX headers not counted). */
  readonly entries: number
}

export interface DirectoryLayerOptions {
  /** Where to write the blob. Its directory must exist. */
  readonly output: string
  /**
   * Decides per path (relative, no leading "./" or "/") whether it goes into the layer. Returning
   * false for a directory prunes its whole subtree. The root itself is never written.
   */
  readonly filter?: (relPath: string, stats: Stats) => boolean
  /**
   * Added entries, e.g. whiteouts and test scripts: each right after the tree's contents of its
   * parent directory if the layer has that directory, else at the end. Root-level ones come last.
   */
  readonly extra?: ReadonlyArray<LayerEntrySpec>
  /**
   * Entries written after everything else, pulled one at a time: generated trees of any size (the
   * scale bench's) never sit in memory whole.
   */
  readonly stream?: Iterable<LayerEntrySpec> | AsyncIterable<LayerEntrySpec>
  readonly compression?: FileCompression
  /** gzip level; 1 is plenty for tests and several times faster than the default on 100 MB. */
  readonly level?: number
}

const mediaTypes: Record<FileCompression, string> = {
  gzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  none: "application/vnd.oci.image.layer.v1.tar"
}

/** Builds a layer blob from `dir` (and/or `extra` entries), streaming. */
export const layerFromDirectory = async (
  dir: string | undefined,
  options: DirectoryLayerOptions
): Promise<LayerFile> => {
  const compression = options.compression ?? "gzip"
  const pack = tar.pack()
  const tarHash = createHash("sha256")
  const blobHash = createHash("sha256")
  let tarSize = 0
  let blobSize = 0
  const tap = (onChunk: (chunk: Buffer) => void) =>
    new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        onChunk(chunk)
        callback(null, chunk)
      }
    })
  const stages: Array<NodeJS.ReadWriteStream> = [
    tap((chunk) => {
      tarHash.update(chunk)
      tarSize += chunk.length
    })
  ]
  if (compression === "gzip") stages.push(zlib.createGzip({ level: options.level ?? 1 }))
  stages.push(
    tap((chunk) => {
      blobHash.update(chunk)
      blobSize += chunk.length
    })
  )
  const written = pipeline([pack as unknown as NodeJS.ReadableStream, ...stages, createWriteStream(options.output)])
  // If the output side fails, the writer below must stop rather than wait for a drain forever.
  let failed: unknown
  written.catch((error) => {
    failed = error
    pack.destroy(error as Error)
  })

  const writer = new EntryWriter(pack)
  try {
    // Extras go right after the contents of their parent directory when the tree has it: tar
    // extractors restore a directory's mtime once they move past it, so a later child would bump it.
    const extras = new Map<string, Array<LayerEntrySpec>>()
    for (const spec of options.extra ?? []) {
      const parent = path.posix.dirname(spec.name.replace(/^(\.\/|\/)+/, "").replace(/\/+$/, ""))
      extras.set(parent, [...(extras.get(parent) ?? []), spec])
    }
    if (dir !== undefined) {
      await writer.tree(dir, options.filter, async (rel) => {
        for (const spec of extras.get(rel) ?? []) await writer.spec(spec)
        extras.delete(rel)
      })
    }
    for (const specs of extras.values()) for (const spec of specs) await writer.spec(spec)
    for await (const spec of options.stream ?? []) await writer.spec(spec)
    pack.finalize()
  } catch (error) {
    pack.destroy(error as Error)
    await written.catch(() => undefined)
    throw failed ?? error
  }
  await written
  return {
    path: options.output,
    digest: `sha256:${blobHash.digest("hex")}`,
    diffId: `sha256:${tarHash.digest("hex")}`,
    size: blobSize,
    uncompressedSize: tarSize,
    mediaType: mediaTypes[compression],
    compression,
    entries: writer.count
  }
}

/** A whiteout entry deleting `target` (e.g. "etc/motd") from lower layers. */
export const whiteout = (target: string): LayerEntrySpec => {
  const clean = target.replace(/^\/+/, "").replace(/\/+$/, "")
  const dir = path.posix.dirname(clean)
  const name = `.wh.${path.posix.basename(clean)}`
  return { type: "file", name: dir === "." ? name : `${dir}/${name}`, mode: 0o644 }
}

/** An opaque whiteout: hides everything lower layers put under `dir`. */
export const opaqueWhiteout = (dir: string): LayerEntrySpec => ({
  type: "file",
  name: `${dir.replace(/^\/+/, "").replace(/\/+$/, "")}/.wh..wh..opq`,
  mode: 0o644
})

/**
 * Loads a blob file into the in-memory `BuiltLayer` shape of ./layers.ts (both the blob and the
 * uncompressed tar). Fine for a few hundred MB on this machine, but prefer the file where a consumer
 * can stream.
 */
export const loadBuiltLayer = async (layer: LayerFile): Promise<BuiltLayer> => {
  const blob = await fs.readFile(layer.path)
  const tarball = layer.compression === "gzip" ? zlib.gunzipSync(blob) : blob
  return {
    tar: tarball,
    blob,
    compression: layer.compression,
    digest: layer.digest,
    diffId: layer.diffId,
    mediaType: layer.mediaType
  }
}

export type SplitLayerName = "base" | "docs" | "top"

export interface SplitImage {
  /** Bottom to top. */
  readonly layers: ReadonlyArray<LayerFile & { readonly name: SplitLayerName }>
  /** Paths (relative) that the top layer's whiteouts delete from lower layers. */
  readonly whiteouts: ReadonlyArray<string>
  /** Where the top layer puts the test init, relative (merged-usr resolved: usr/sbin/...). */
  readonly initPath: string
  /** Its text; its BANGER-CHECK lines report `motd`, `doc-dpkg` and `doc-bash` as present/absent. */
  readonly initScript: string
}

/** What the split's top layer deletes: a file from the base layer and a directory from the docs layer. */
export const SPLIT_WHITEOUTS = ["etc/motd", "usr/share/doc/dpkg"] as const

const presence = (key: string, inside: string) =>
  `if [ -e ${inside} ]; then echo "BANGER-CHECK ${key}=present"; else echo "BANGER-CHECK ${key}=absent"; fi`

/**
 * Splits a Debian tree into a three-layer image: everything but /usr/share/doc, then the docs, then
 * a small layer with the test init and whiteouts for SPLIT_WHITEOUTS. Applied in order, the result
 * boots with init=/sbin/banger-test-init and reports motd=absent doc-dpkg=absent doc-bash=present.
 */
export const splitDebianImage = async (
  rootfs: string,
  outDir: string,
  options: { readonly level?: number; readonly checks?: ReadonlyArray<string> } = {}
): Promise<SplitImage> => {
  const docs = "usr/share/doc"
  const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`)
  const parents = (p: string) => {
    const parts = p.split("/").slice(0, -1)
    return parts.map((_, i) => parts.slice(0, i + 1).join("/"))
  }
  const initPath = path.relative(rootfs, await pathInRoot(rootfs, TEST_INIT_PATH))
  const initScript = testInitScript({
    checks: [
      presence("motd", "/etc/motd"),
      presence("doc-dpkg", "/usr/share/doc/dpkg"),
      presence("doc-bash", "/usr/share/doc/bash/copyright"),
      ...(options.checks ?? [])
    ]
  })
  // The top layer also carries the directories above what it adds, with their metadata from the
  // tree, as `docker build` layers do.
  const topDirs = new Set([initPath, ...SPLIT_WHITEOUTS].flatMap(parents))
  const plan: Array<{ name: SplitLayerName; options: Omit<DirectoryLayerOptions, "output"> }> = [
    { name: "base", options: { filter: (p) => !under(p, docs) } },
    { name: "docs", options: { filter: (p) => under(docs, p) || under(p, docs) } },
    {
      name: "top",
      options: {
        filter: (p) => topDirs.has(p),
        extra: [
          { type: "file", name: initPath, mode: 0o755, content: initScript },
          ...SPLIT_WHITEOUTS.map((target) => whiteout(target))
        ]
      }
    }
  ]
  const layers: Array<LayerFile & { readonly name: SplitLayerName }> = []
  for (const step of plan) {
    const file = await layerFromDirectory(rootfs, {
      ...step.options,
      output: path.join(outDir, `${step.name}.tar.gz`),
      level: options.level
    })
    layers.push({ ...file, name: step.name })
  }
  return { layers, whiteouts: [...SPLIT_WHITEOUTS], initPath, initScript }
}

/**
 * Reference applier, independent of banger: per layer, delete what its whiteouts name, then let GNU
 * tar extract the rest as root (owners, modes, hardlinks, devices). For checking layer files and
 * for building a known-good rootfs to compare banger's against; not hardened against hostile tars.
 */
export const applyLayersWithTar = async (layers: ReadonlyArray<LayerFile>, dir: string): Promise<void> => {
  await fs.mkdir(dir, { recursive: true })
  for (const layer of layers) {
    const names = (await run("tar", ["-tzf", layer.path])).split("\n").filter(Boolean)
    for (const name of names) {
      const base = path.posix.basename(name)
      if (!base.startsWith(".wh.")) continue
      const parent = path.join(dir, path.posix.dirname(name))
      if (base === ".wh..wh..opq") {
        for (const child of await fs.readdir(parent).catch(() => [] as Array<string>)) {
          await fs.rm(path.join(parent, child), { recursive: true, force: true })
        }
      } else {
        await fs.rm(path.join(parent, base.slice(".wh.".length)), { recursive: true, force: true })
      }
    }
    await run("tar", [
      "-xzpf",
      layer.path,
      "-C",
      dir,
      "--numeric-owner",
      "--same-owner",
      "--exclude=.wh.*",
      "--exclude=*/.wh.*"
    ])
  }
}

/** Linux's dev_t split (glibc's gnu_dev_major/minor). */
const devMajor = (rdev: number) => Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn))
const devMinor = (rdev: number) => Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn))

/** tar-stream writes numeric fields as 6 octal digits (ustar allows 7), clamping anything larger. */
const FIELD_MAX = 0o777777

const typeBits: Record<LayerEntrySpec["type"], number> = {
  file: 0o100000,
  hardlink: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  char: 0o020000,
  block: 0o060000,
  fifo: 0o010000
}

type EntryHeader = Parameters<tar.Pack["entry"]>[0]

interface Header {
  readonly name: string
  readonly type: NonNullable<tar.Header["type"]>
  readonly mode: number
  readonly uid: number
  readonly gid: number
  readonly mtime: Date
  readonly size?: number
  readonly linkname?: string
  readonly devmajor?: number
  readonly devminor?: number
}

class EntryWriter {
  count = 0
  private readonly links = new Map<string, string>()

  constructor(private readonly pack: tar.Pack) {}

  /** `afterDirectory` runs once a written directory's subtree is done (not for the root). */
  async tree(
    root: string,
    filter: DirectoryLayerOptions["filter"],
    afterDirectory: (relPath: string) => Promise<void>
  ): Promise<void> {
    const walk = async (rel: string): Promise<void> => {
      // Sorted so the same tree always gives the same digest.
      const names = (await fs.readdir(rel === "" ? root : path.join(root, rel))).sort()
      for (const name of names) {
        const childRel = rel === "" ? name : `${rel}/${name}`
        const full = path.join(root, childRel)
        const stats = await fs.lstat(full)
        if (filter && !filter(childRel, stats)) continue
        await this.fromStats(childRel, full, stats)
        if (stats.isDirectory()) {
          await walk(childRel)
          await afterDirectory(childRel)
        }
      }
    }
    await walk("")
  }

  private async fromStats(rel: string, full: string, stats: Stats): Promise<void> {
    const base = {
      name: stats.isDirectory() ? `${rel}/` : rel,
      // The full st_mode, type bits included: tar-stream replaces a falsy mode (a real 0000 file) with
      // its default, and masks to 07777 when encoding anyway.
      mode: stats.mode,
      uid: stats.uid,
      gid: stats.gid,
      mtime: new Date(Math.floor(stats.mtimeMs / 1000) * 1000)
    }
    if (stats.isDirectory()) return this.write({ ...base, type: "directory" })
    if (stats.isSymbolicLink()) return this.write({ ...base, type: "symlink", linkname: await fs.readlink(full) })
    if (stats.nlink > 1) {
      const key = `${stats.dev}:${stats.ino}`
      const first = this.links.get(key)
      if (first !== undefined) return this.write({ ...base, type: "link", linkname: first })
      this.links.set(key, rel)
    }
    if (stats.isFile()) return this.write({ ...base, type: "file", size: stats.size }, full)
    if (stats.isCharacterDevice() || stats.isBlockDevice()) {
      return this.write({
        ...base,
        type: stats.isCharacterDevice() ? "character-device" : "block-device",
        devmajor: devMajor(stats.rdev),
        devminor: devMinor(stats.rdev)
      })
    }
    if (stats.isFIFO()) return this.write({ ...base, type: "fifo" })
    // Sockets: tar has no type for them, and they are meaningless in an image.
  }

  async spec(spec: LayerEntrySpec): Promise<void> {
    const perm = spec.mode ?? (spec.type === "directory" ? 0o755 : spec.type === "file" ? 0o644 : 0o777)
    const base = {
      name: spec.name,
      // Type bits keep a 0000 mode truthy, which tar-stream would otherwise replace (see fromStats).
      mode: perm | typeBits[spec.type],
      uid: spec.uid ?? 0,
      gid: spec.gid ?? 0,
      mtime: new Date((spec.mtime ?? 1_700_000_000) * 1000)
    }
    const xattrs = spec.xattrs
    switch (spec.type) {
      case "file": {
        const content = typeof spec.content === "string" ? Buffer.from(spec.content) : Buffer.from(spec.content ?? [])
        return this.write({ ...base, type: "file", size: content.length }, content, xattrs)
      }
      case "directory":
        return this.write({ ...base, type: "directory" }, undefined, xattrs)
      case "symlink":
        return this.write({ ...base, type: "symlink", linkname: spec.target }, undefined, xattrs)
      case "hardlink":
        return this.write({ ...base, type: "link", linkname: spec.target }, undefined, xattrs)
      case "char":
      case "block":
        return this.write(
          {
            ...base,
            type: spec.type === "char" ? "character-device" : "block-device",
            devmajor: spec.major,
            devminor: spec.minor
          },
          undefined,
          xattrs
        )
      case "fifo":
        return this.write({ ...base, type: "fifo" }, undefined, xattrs)
    }
  }

  private async write(
    header: Header,
    content?: string | Buffer,
    xattrs?: Readonly<Record<string, string | Uint8Array>>
  ): Promise<void> {
    // tar-stream itself moves names and link targets that ustar cannot hold (long, non-ASCII) into a
    // PAX header; ids past ustar's 7 octal digits and xattrs have to be asked for.
    const pax: Record<string, string> = {}
    if (header.uid > FIELD_MAX) pax.uid = String(header.uid)
    if (header.gid > FIELD_MAX) pax.gid = String(header.gid)
    // Linux minors go to 2^20-1. libarchive and star read these keys; GNU tar has none for device
    // numbers and sees 262143 (such devices do not occur in real images).
    if ((header.devmajor ?? 0) > FIELD_MAX) pax["SCHILY.devmajor"] = String(header.devmajor)
    if ((header.devminor ?? 0) > FIELD_MAX) pax["SCHILY.devminor"] = String(header.devminor)
    for (const [key, value] of Object.entries(xattrs ?? {})) pax[`SCHILY.xattr.${key}`] = xattrText(key, value)
    await this.entry(Object.keys(pax).length > 0 ? { ...header, pax } : header, content)
    this.count++
  }

  private entry(header: EntryHeader, content?: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (error?: Error | null) => (error ? reject(error) : resolve())
      if (typeof content === "string") {
        // A path on disk: stream it, never hold the file.
        const sink = this.pack.entry(header, done)
        sink.on("error", reject)
        const source = createReadStream(content)
        source.on("error", (error) => {
          sink.destroy(error)
          reject(error)
        })
        source.pipe(sink as unknown as NodeJS.WritableStream)
      } else if (content !== undefined && content.length > 0) {
        this.pack.entry(header, content, done).on("error", reject)
      } else {
        // No body: an empty write would be refused for non-file entries, and an empty file still
        // needs its sink ended.
        const sink = this.pack.entry(header, done)
        sink.on("error", reject)
        sink.end(null)
      }
    })
  }
}

/** tar-stream writes PAX values as UTF-8 text; binary values need buildLayer in ./layers.ts. */
const xattrText = (key: string, value: string | Uint8Array): string => {
  if (typeof value === "string") return value
  const text = Buffer.from(value).toString("utf8")
  if (!Buffer.from(text).equals(Buffer.from(value)))
    throw new Error(`xattr ${key}: binary values are not supported here`)
  return text
}
