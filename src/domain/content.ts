/**
 * Where flattened file contents go. The pull writes them straight into the ext4 image being built
 * (an image draft); tests and `image build` from a directory use the same interface. Calls are
 * synchronous, like the rest of layer application, and throw `ContentFailure`.
 */
import type { FilesystemError } from "./errors.js"

/** A file's stored contents; what it holds beyond the size is the store's business. */
export interface StoredContent {
  readonly size: number
}

export interface ContentWriter {
  /** Appends the next bytes; all `size` of them (holes included) arrive before `finish`. */
  readonly write: (chunk: Uint8Array) => void
  /** A hole of `length` zero bytes, in a file begun with a sparse map: it takes no space. */
  readonly skip: (length: number) => void
  readonly finish: () => StoredContent
  /** Gives the space back after a failure part-way through. */
  readonly abandon: () => void
}

export interface ContentSink {
  /**
   * Starts a file of exactly `size` bytes (the tar header says how many before they arrive). A
   * sparse file's map (`[offset, length, ...]` of its data) says which bytes are data; the rest
   * arrive as holes.
   */
  readonly begin: (size: number, sparse?: ReadonlyArray<number>) => ContentWriter
  /** The file's last name is gone: its space can hold later files. */
  readonly release: (content: StoredContent) => void
  /** How to keep contents as numbers instead of objects, when the sink knows one. */
  readonly packing?: ContentPacking | undefined
}

/**
 * Most stored contents are two numbers (an image draft's: where the blocks start, how many), and
 * an object each costs a model of 500k files ~30 MiB: a sink that can say so lets the model keep
 * the numbers and rebuild the object when it is asked for.
 */
export interface ContentPacking {
  /** Two 32-bit unsigned integers standing for `content`, or undefined when it needs its object. */
  readonly pack: (content: StoredContent) => readonly [number, number] | undefined
  readonly unpack: (size: number, first: number, second: number) => StoredContent
}

/** A failed write, thrown out of the synchronous calls; the caller fails with `error`. */
export class ContentFailure {
  constructor(readonly error: FilesystemError) {}
}
