import { Context, type Effect, Layer, type Scope } from "effect"
import type { ContentSink } from "../../domain/content.js"
import type { FlatEntries } from "../../domain/entry-list.js"
import type { Ext4Error } from "../../domain/errors.js"
import type { FlatTree } from "../../domain/tree.js"
import { makeExt4Tools } from "./build.js"
import { type Ext4ToolsFake, makeExt4ToolsFake } from "./ext4-tools-fake.js"

export interface BuildExt4Options {
  readonly tree: FlatTree
  /** The image file to create (sparse); replaced if it exists, removed if the build fails. */
  readonly output: string
  /** File size; the filesystem uses whole 4 KiB blocks of it. */
  readonly sizeBytes: number
  /** Inode count; by default one per 16 KiB, or a quarter more than the tree uses when that is more. */
  readonly inodes?: number | undefined
  /** Volume label, at most 16 bytes. */
  readonly label?: string | undefined
  /**
   * Filesystem UUID. Random when absent; when given, the directory hash seed derives from it and
   * the same tree and options give a byte-identical image.
   */
  readonly uuid?: string | undefined
  /**
   * Seconds since the epoch stamped on the superblock and on what the writer makes itself
   * (lost+found, the journal). Default: the newest entry mtime, capped at now.
   */
  readonly timestamp?: number | undefined
}

export interface OpenDraftOptions {
  /** The image file to create; removed when the draft's scope closes with a failure. */
  readonly output: string
  readonly uuid?: string | undefined
  /** The largest image this may become (a requested size); by default up to 1 TiB. */
  readonly maxBytes?: number | undefined
}

export interface WriteImageOptions {
  readonly sizeBytes: number
  readonly inodes?: number | undefined
  readonly label?: string | undefined
}

/** A tree laid out in a draft, waiting for its size. */
export interface PlannedImage {
  /** The smallest image that holds the tree. */
  readonly requiredBytes: number
  /** Inodes the tree takes, the reserved ones included. */
  readonly usedInodes: number
  /** Why the tree cannot be written at this size, or undefined when it can. */
  readonly misfit: (sizeBytes: number, inodes?: number) => string | undefined
  readonly write: (options: WriteImageOptions) => Effect.Effect<void, Ext4Error>
}

/** An ext4 image being written: contents first (while flattening), then the tree, then the metadata. */
export interface ImageDraft {
  readonly contents: ContentSink
  /** `entries` carry the `content` the sink returned for each file. */
  readonly plan: (
    entries: FlatEntries,
    options?: { readonly timestamp?: number | undefined }
  ) => Effect.Effect<PlannedImage, Ext4Error>
}

/** Writes ext4 images itself and checks them with e2fsck. */
export interface Ext4ToolsShape {
  readonly openDraft: (options: OpenDraftOptions) => Effect.Effect<ImageDraft, Ext4Error, Scope.Scope>
  /** An image of a tree on disk (`FlatTree`): its file contents copied in, its metadata exact. */
  readonly build: (options: BuildExt4Options) => Effect.Effect<void, Ext4Error>
  /** `e2fsck -fn`: fails unless the filesystem is clean. */
  readonly check: (image: string) => Effect.Effect<void, Ext4Error>
  /** `e2fsck -fp`: fixes what is safe to fix; fails only when the filesystem stays unusable. */
  readonly repair: (image: string) => Effect.Effect<void, Ext4Error>
  /** Extends the file to `sizeBytes` (sparse) and grows the filesystem with resize2fs; repair first. */
  readonly grow: (image: string, sizeBytes: number) => Effect.Effect<void, Ext4Error>
}

export class Ext4Tools extends Context.Tag("banger/Ext4Tools")<Ext4Tools, Ext4ToolsShape>() {
  /** Writes images in-process, checks them with e2fsck; needs `NodeContext.layer` (CommandExecutor). */
  static readonly layer = Layer.effect(Ext4Tools, makeExt4Tools)

  /**
   * For pipeline unit tests: records every call, writes a small marker file (padded sparsely to
   * `sizeBytes`) instead of an image, and fails on demand. Pass your own `fake` to read the calls.
   */
  static readonly layerTest = (fake: Ext4ToolsFake = makeExt4ToolsFake()) => Layer.succeed(Ext4Tools, fake.tools)
}

export { type Ext4ToolsFake, makeExt4ToolsFake } from "./ext4-tools-fake.js"
