import { Context, type Effect } from "effect"
import type { Ext4Error } from "../../domain/errors.js"
import type { FlatTree } from "../../domain/tree.js"

export interface BuildExt4Options {
  readonly tree: FlatTree
  /** The image file to create (sparse). */
  readonly output: string
  readonly sizeBytes: number
  /** Inode count; mkfs picks its default when absent. */
  readonly inodes?: number | undefined
  readonly label?: string | undefined
}

/** e2fsprogs: builds an ext4 image whose every inode matches the tree's metadata exactly. */
export interface Ext4ToolsShape {
  readonly build: (options: BuildExt4Options) => Effect.Effect<void, Ext4Error>
  /** `e2fsck -fn`: fails unless the filesystem is clean. */
  readonly check: (image: string) => Effect.Effect<void, Ext4Error>
}

export class Ext4Tools extends Context.Tag("banger/Ext4Tools")<Ext4Tools, Ext4ToolsShape>() {}
