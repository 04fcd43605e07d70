/**
 * Builds OCI layer tarballs for tests, byte for byte what a registry would serve, including the
 * hostile ones. Binary xattrs and oversized ids go into hand-written PAX records, since tar-stream
 * writes PAX values as UTF-8 text only.
 */

import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as zlib from "node:zlib"
import * as tar from "tar-stream"

export type LayerEntrySpec =
  | ({ readonly type: "file"; readonly content?: string | Uint8Array } & CommonSpec)
  | ({ readonly type: "directory" } & CommonSpec)
  | ({ readonly type: "symlink"; readonly target: string } & CommonSpec)
  | ({ readonly type: "hardlink"; readonly target: string } & CommonSpec)
  | ({ readonly type: "char" | "block"; readonly major: number; readonly minor: number } & CommonSpec)
  | ({ readonly type: "fifo" } & CommonSpec)

interface CommonSpec {
  /** The tar name, written as given (so `../x`, `/abs` and `./` prefixes are all expressible). */
  readonly name: string
  readonly mode?: number
  readonly uid?: number
  readonly gid?: number
  /** Seconds since the epoch. */
  readonly mtime?: number
  readonly xattrs?: Readonly<Record<string, string | Uint8Array>>
}

export type Compression = "gzip" | "zstd" | "none"

export interface BuiltLayer {
  /** The uncompressed tar. */
  readonly tar: Buffer
  /** The blob as pushed (compressed per `compression`). */
  readonly blob: Buffer
  readonly compression: Compression
  readonly digest: string
  readonly diffId: string
  readonly mediaType: string
}

export const sha256 = (data: Uint8Array): string => `sha256:${createHash("sha256").update(data).digest("hex")}`

const paxRecord = (key: string, value: Uint8Array): Buffer => {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from("\n")])
  // The length prefix counts itself; iterate until the digit count settles.
  let length = body.length + 1
  while (String(length).length + body.length !== length) length = String(length).length + body.length
  return Buffer.concat([Buffer.from(String(length)), body])
}

const needsPax = (spec: LayerEntrySpec) =>
  (spec.xattrs && Object.keys(spec.xattrs).length > 0) || (spec.uid ?? 0) > 0o7777777 || (spec.gid ?? 0) > 0o7777777

const defaultMode = (spec: LayerEntrySpec) => (spec.type === "directory" ? 0o755 : spec.type === "file" ? 0o644 : 0o777)

// One entry (or PAX header) at a time, without the end-of-archive blocks, so raw headers can be
// spliced in between.
const packEntry = async (header: Partial<tar.Header> & Pick<tar.Header, "name">, body?: Buffer): Promise<Buffer> => {
  const pack = tar.pack()
  const chunks: Array<Buffer> = []
  pack.on("data", (chunk) => chunks.push(chunk as Buffer))
  const done = new Promise<void>((resolve, reject) => {
    pack.on("end", () => resolve())
    pack.on("error", reject)
  })
  if (body === undefined) pack.entry(header)
  else pack.entry(header, body)
  pack.finalize()
  await done
  const packed = Buffer.concat(chunks)
  return packed.subarray(0, packed.length - 1024)
}

// tar-stream refuses a body on anything but files, so the PAX header is packed as a file and
// retyped to `x` (with its checksum recomputed).
const paxHeader = async (records: Buffer): Promise<Buffer> => {
  const packed = Buffer.from(
    await packEntry({ name: "PaxHeaders/entry", type: "file", size: records.length, mtime: new Date(0) }, records)
  )
  packed[156] = "x".charCodeAt(0)
  packed.fill(0x20, 148, 156)
  let sum = 0
  for (let i = 0; i < 512; i++) sum += packed[i]!
  packed.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1")
  return packed
}

export const buildTar = async (entries: ReadonlyArray<LayerEntrySpec>): Promise<Buffer> => {
  const parts: Array<Buffer> = []
  for (const spec of entries) {
    if (needsPax(spec)) {
      const records: Array<Buffer> = []
      for (const [key, value] of Object.entries(spec.xattrs ?? {})) {
        records.push(paxRecord(`SCHILY.xattr.${key}`, typeof value === "string" ? Buffer.from(value) : value))
      }
      if ((spec.uid ?? 0) > 0o7777777) records.push(paxRecord("uid", Buffer.from(String(spec.uid))))
      if ((spec.gid ?? 0) > 0o7777777) records.push(paxRecord("gid", Buffer.from(String(spec.gid))))
      parts.push(await paxHeader(Buffer.concat(records)))
    }
    const header = {
      name: spec.name,
      mode: spec.mode ?? defaultMode(spec),
      uid: Math.min(spec.uid ?? 0, 0o7777777),
      gid: Math.min(spec.gid ?? 0, 0o7777777),
      mtime: new Date((spec.mtime ?? 1_700_000_000) * 1000)
    }
    switch (spec.type) {
      case "file": {
        const content = typeof spec.content === "string" ? Buffer.from(spec.content) : Buffer.from(spec.content ?? [])
        parts.push(await packEntry({ ...header, type: "file", size: content.length }, content))
        break
      }
      case "directory":
        parts.push(await packEntry({ ...header, type: "directory" }))
        break
      case "symlink":
        parts.push(await packEntry({ ...header, type: "symlink", linkname: spec.target }))
        break
      case "hardlink":
        parts.push(await packEntry({ ...header, type: "link", linkname: spec.target }))
        break
      case "char":
      case "block":
        parts.push(
          await packEntry({
            ...header,
            type: spec.type === "char" ? "character-device" : "block-device",
            devmajor: spec.major,
            devminor: spec.minor
          })
        )
        break
      case "fifo":
        parts.push(await packEntry({ ...header, type: "fifo" }))
        break
    }
  }
  parts.push(Buffer.alloc(1024))
  return Buffer.concat(parts)
}

export const compress = (data: Buffer, compression: Compression): Buffer => {
  switch (compression) {
    case "none":
      return data
    case "gzip":
      return zlib.gzipSync(data)
    case "zstd": {
      const result = spawnSync("zstd", ["-q", "-c", "-3"], { input: data, maxBuffer: 1 << 30 })
      if (result.status !== 0) throw new Error(`zstd failed: ${result.stderr}`)
      return result.stdout
    }
  }
}

const layerMediaType: Record<Compression, string> = {
  none: "application/vnd.oci.image.layer.v1.tar",
  gzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  zstd: "application/vnd.oci.image.layer.v1.tar+zstd"
}

export const buildLayer = async (
  entries: ReadonlyArray<LayerEntrySpec>,
  compression: Compression = "gzip"
): Promise<BuiltLayer> => layerFromTar(await buildTar(entries), compression)

export const layerFromTar = (tarball: Buffer, compression: Compression = "gzip"): BuiltLayer => {
  const blob = compress(tarball, compression)
  return {
    tar: tarball,
    blob,
    compression,
    digest: sha256(blob),
    diffId: sha256(tarball),
    mediaType: layerMediaType[compression]
  }
}
