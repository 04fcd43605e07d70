/**
 * An ext4 image being written in place: file contents land in their final blocks while the layers
 * stream in (see `DraftContents`), then `plan` lays out the tree and `write` adds the metadata for
 * the chosen size. No temp tree, no mkfs: the image file is the only thing written.
 */
import { createHash, randomUUID } from "node:crypto"
import * as fs from "node:fs"
import { type FlatEntries, isEntryList, listEntries } from "../../../domain/entry-list.js"
import { BlockAllocator, reservedBlocksFor } from "./allocator.js"
import { crc32cUpdate } from "./crc32c.js"
import { DraftContents } from "./draft-contents.js"
import { BLOCK_SIZE } from "./format.js"
import { defaultInodesFor, fits, type Geometry, geometryFor } from "./layout.js"
import { planTree, type TreePlan } from "./plan.js"
import { writeImage } from "./write-image.js"

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export const parseUuid = (uuid: string): Uint8Array | undefined =>
  UUID.test(uuid) ? Buffer.from(uuid.replaceAll("-", ""), "hex") : undefined

/** The directory hash seed, derived from the UUID so that a given UUID always gives the same bytes. */
export const hashSeedFor = (uuid: Uint8Array): Uint8Array =>
  createHash("sha256").update("banger-ext4-hash-seed:").update(uuid).digest().subarray(0, 16)

/** Inodes for an image of `blocks`: one per 16 KiB, or a quarter more than the tree uses when that is more. */
export const inodesFor = (blocks: number, used: number) => Math.max(defaultInodesFor(blocks), Math.ceil(used * 1.25))

export interface PlannedImage {
  /** The smallest image, in bytes, that holds the tree (with inodes to spare, as `inodesFor` gives). */
  readonly requiredBytes: number
  readonly usedInodes: number
  /** The filesystem for an image of `sizeBytes`, or why the tree does not fit it. */
  readonly geometry: (sizeBytes: number, inodes?: number) => Geometry | string
  /** Writes the metadata; the image file ends up `sizeBytes` long. Call once. */
  readonly write: (options: {
    readonly sizeBytes: number
    readonly geometry: Geometry
    readonly label?: string | undefined
  }) => void
}

export class ImageDraftFile {
  readonly allocator: BlockAllocator
  readonly contents: DraftContents
  readonly uuid: Uint8Array
  private readonly fsSeed: number

  private constructor(
    readonly path: string,
    private readonly fd: number,
    uuid: Uint8Array,
    maxBytes: number | undefined
  ) {
    this.allocator = new BlockAllocator(
      reservedBlocksFor(maxBytes === undefined ? undefined : Math.ceil(maxBytes / BLOCK_SIZE))
    )
    this.contents = new DraftContents(fd, path, this.allocator)
    this.uuid = uuid
    this.fsSeed = crc32cUpdate(0xffffffff, uuid)
  }

  /** Creates (or empties) `path`; throws what `fs.openSync` throws, or on a malformed UUID. */
  static open(
    path: string,
    options: { readonly uuid?: string | undefined; readonly maxBytes?: number | undefined } = {}
  ) {
    const uuid = parseUuid(options.uuid ?? randomUUID())
    if (uuid === undefined) throw new Error(`"${options.uuid}" is not a UUID`)
    const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o644)
    return new ImageDraftFile(path, fd, uuid, options.maxBytes)
  }

  /** Closes the file once no background writeback uses its descriptor. */
  async close() {
    await this.contents.settled()
    fs.closeSync(this.fd)
  }

  /** Lays out the tree; a string says why it cannot be stored. */
  plan(entries: FlatEntries, timestamp: number): PlannedImage | string {
    const list = isEntryList(entries) ? entries : listEntries(entries)
    if (typeof list === "string") return list
    this.contents.flush()
    const contents = this.contents
    const tree: TreePlan | string = planTree(list, this.allocator, {
      fsSeed: this.fsSeed,
      timestamp,
      write: (block, bytes) => contents.writeAt(block * BLOCK_SIZE, bytes)
    })
    if (typeof tree === "string") return tree
    const reserve = this.allocator.reserve
    const next = this.allocator.next
    const usedInodes = tree.lastInode
    const geometry = (sizeBytes: number, inodes?: number): Geometry | string => {
      const blocks = Math.floor(sizeBytes / BLOCK_SIZE)
      const shape = geometryFor(blocks, inodes ?? inodesFor(blocks, usedInodes), reserve)
      if (typeof shape === "string") return shape
      if (shape.inodes < usedInodes) return `it has room for ${shape.inodes} inodes, the tree needs ${usedInodes}`
      if (!fits(shape, next, usedInodes, reserve))
        return `the tree and its metadata need more than its ${shape.blocks} blocks`
      return shape
    }
    let blocks = next
    for (let attempt = 0; ; attempt++) {
      if (typeof geometry(blocks * BLOCK_SIZE) !== "string") break
      // Growing by a group at most per step keeps the search short whatever the tree.
      blocks += Math.max(16, Math.min(32768, Math.ceil(blocks / 64)))
      if (attempt > 100_000) return "no ext4 layout holds this tree"
    }
    // Step back down to the smallest size that fits, one block at a time from the last short step.
    let low = Math.max(next, blocks - Math.max(16, Math.min(32768, Math.ceil(blocks / 64))))
    let high = blocks
    while (high - low > 1) {
      const middle = Math.floor((low + high) / 2)
      if (typeof geometry(middle * BLOCK_SIZE) === "string") low = middle
      else high = middle
    }
    const fsSeed = this.fsSeed
    const uuid = this.uuid
    const fd = this.fd
    return {
      requiredBytes: high * BLOCK_SIZE,
      usedInodes,
      geometry,
      write: (options) => {
        const label = Buffer.alloc(16)
        label.write(options.label ?? "")
        writeImage(contents, tree, options.geometry, {
          uuid,
          fsSeed,
          hashSeed: hashSeedFor(uuid),
          label,
          timestamp
        })
        fs.ftruncateSync(fd, options.sizeBytes)
      }
    }
  }
}
