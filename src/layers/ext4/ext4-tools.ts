import { Context, type Effect, Layer } from "effect"
import type { Ext4Error } from "../../domain/errors.js"
import type { FlatTree } from "../../domain/tree.js"
import { makeExt4Tools } from "./build.js"
import { type Ext4ToolsFake, makeExt4ToolsFake } from "./ext4-tools-fake.js"

export interface BuildExt4Options {
  readonly tree: FlatTree
  /** The image file to create (sparse); replaced if it exists, removed if the build fails. */
  readonly output: string
  /** File size; mkfs uses whole 4 KiB blocks of it. */
  readonly sizeBytes: number
  /** Inode count; mkfs picks its default (one per 16 KiB) when absent. */
  readonly inodes?: number | undefined
  /** Volume label, at most 16 bytes. */
  readonly label?: string | undefined
  /**
   * Filesystem UUID. Random when absent; when given, the directory hash seed derives from it and
   * the same tree and options give a byte-identical image.
   */
  readonly uuid?: string | undefined
  /**
   * Seconds since the epoch stamped on the superblock and on inodes mkfs makes itself
   * (lost+found). Default: the newest entry mtime, capped at now.
   */
  readonly timestamp?: number | undefined
}

/** e2fsprogs: builds an ext4 image whose every inode matches the tree's metadata exactly. */
export interface Ext4ToolsShape {
  readonly build: (options: BuildExt4Options) => Effect.Effect<void, Ext4Error>
  /** `e2fsck -fn`: fails unless the filesystem is clean. */
  readonly check: (image: string) => Effect.Effect<void, Ext4Error>
}

export class Ext4Tools extends Context.Tag("banger/Ext4Tools")<Ext4Tools, Ext4ToolsShape>() {
  /** Runs mkfs.ext4, debugfs and e2fsck; needs `NodeContext.layer` (CommandExecutor, FileSystem). */
  static readonly layer = Layer.effect(Ext4Tools, makeExt4Tools)

  /**
   * For pipeline unit tests: records every call, writes a small marker file (padded sparsely to
   * `sizeBytes`) instead of an image, and fails on demand. Pass your own `fake` to read the calls.
   */
  static readonly layerTest = (fake: Ext4ToolsFake = makeExt4ToolsFake()) => Layer.succeed(Ext4Tools, fake.tools)
}

export { type Ext4ToolsFake, makeExt4ToolsFake } from "./ext4-tools-fake.js"
