/**
 * File contents written straight to their final blocks in the image file. Files are small and
 * arrive one after another into consecutive blocks, so writes are combined in a 1 MiB buffer and
 * reach the disk as large sequential writes; each file's last block is padded with zeros, so the
 * buffer stays contiguous and a reused block keeps nothing of what it held before.
 */
import * as fs from "node:fs"
import {
  ContentFailure,
  type ContentPacking,
  type ContentSink,
  type ContentWriter,
  type StoredContent
} from "../../../domain/content.js"
import { describeSystemError, FilesystemError } from "../../../domain/errors.js"
import { formatSize } from "../../../domain/size.js"
import { dropPageCache } from "../../host/page-cache.js"
import type { BlockAllocator, BlockRun } from "./allocator.js"
import { BLOCK_SIZE, divideUp } from "./format.js"

/**
 * A file's contents in the image: `size` bytes in these runs, in order, back to back; or, for a
 * sparse file, each run at its `logical` block of the file, the blocks between them holes.
 */
const NO_RUNS: ReadonlyArray<BlockRun> = []

export class FileBlocks implements StoredContent {
  // One object per file, so the common case (one run or none, not sparse) is two numbers, not arrays.
  /** With `length`: the one run of a contiguous file (`0, 0` for an empty one). */
  readonly start: number
  readonly length: number
  private readonly manyRuns: ReadonlyArray<BlockRun> | undefined
  readonly logical: ReadonlyArray<number> | undefined

  private constructor(
    readonly size: number,
    start: number,
    length: number,
    manyRuns: ReadonlyArray<BlockRun> | undefined,
    logical: ReadonlyArray<number> | undefined
  ) {
    this.start = start
    this.length = length
    this.manyRuns = manyRuns
    this.logical = logical
  }

  /** `size` bytes in these runs, back to back; or, with `logical`, each run at its block (sparse). */
  static of(size: number, runs: ReadonlyArray<BlockRun>, logical?: ReadonlyArray<number>): FileBlocks {
    if (runs.length > 1 || logical !== undefined) return new FileBlocks(size, 0, 0, runs, logical)
    return runs.length === 0
      ? FileBlocks.contiguous(size, 0, 0)
      : FileBlocks.contiguous(size, runs[0]!.start, runs[0]!.length)
  }

  /** A contiguous file's contents, from its two numbers (how the tree model keeps most). */
  static contiguous(size: number, start: number, length: number): FileBlocks {
    return new FileBlocks(size, start, length, undefined, undefined)
  }

  /** One run (or none) from logical block 0: `start` and `length` say it all. */
  get isContiguous(): boolean {
    return this.manyRuns === undefined
  }

  get runs(): ReadonlyArray<BlockRun> {
    return this.manyRuns ?? (this.length === 0 ? NO_RUNS : [{ start: this.start, length: this.length }])
  }

  /** `[start, length]` of its one run (`[0, 0]` for none), when contiguous: see `ContentPacking`. */
  packed(): readonly [number, number] | undefined {
    if (this.manyRuns !== undefined || this.start >= 2 ** 32 || this.length >= 2 ** 32) return undefined
    return [this.start, this.length]
  }

  get blockCount(): number {
    if (this.manyRuns === undefined) return this.length
    let blocks = 0
    for (const run of this.manyRuns) blocks += run.length
    return blocks
  }
}

/** The blocks a sparse map's data touches, as `[first, count, ...]` ranges of logical blocks. */
const touchedBlocks = (map: ReadonlyArray<number>): Array<number> => {
  const ranges: Array<number> = []
  for (let i = 0; i < map.length; i += 2) {
    const length = map[i + 1]!
    if (length === 0) continue
    const first = Math.floor(map[i]! / BLOCK_SIZE)
    const last = Math.floor((map[i]! + length - 1) / BLOCK_SIZE)
    const end = ranges.length === 0 ? -1 : ranges.at(-2)! + ranges.at(-1)!
    if (first <= end) ranges[ranges.length - 1] = last + 1 - ranges.at(-2)!
    else ranges.push(first, last + 1 - first)
  }
  return ranges
}

const BUFFER_BYTES = 1024 * 1024
/**
 * Contents written between two background writebacks (see `startWriteback`). Bench image on a
 * loop-mounted ext4: 64 MiB beat 8 MiB (cold pull 2.52 vs 2.70 s).
 */
const WRITEBACK_BYTES = 64 * 1024 * 1024
/** The most new file data written between two looks at the filesystem's free space. */
const SPACE_CHECK_BYTES = 64 * 1024 * 1024

/** File contents as the two numbers of `FileBlocks.packed`. */
export const fileBlocksPacking: ContentPacking = {
  pack: (content) => (content instanceof FileBlocks ? content.packed() : undefined),
  unpack: (size, start, length) => FileBlocks.contiguous(size, start, length)
}

export class DraftContents implements ContentSink {
  readonly packing = fileBlocksPacking
  private readonly buffer = Buffer.allocUnsafe(BUFFER_BYTES)
  private bufferStart = 0
  private bufferLength = 0
  private writtenSinceWriteback = 0
  private writeback: Promise<void> | undefined
  private writebacksStarted = 0
  /** What a background writeback failed with: reported by `sync`, since the kernel reports it once. */
  private writebackError: unknown
  /** Blocks below this were handed out before: writing them again takes no new space. */
  private freshFrom = 0
  /** File data written or allocated so far, in bytes of whole blocks. */
  private dataBytes = 0
  /** New blocks that may still be handed out before the free space is looked at again. */
  private spaceBudget = 0

  constructor(
    private readonly fd: number,
    private readonly path: string,
    readonly allocator: BlockAllocator
  ) {}

  /** Writes everything buffered to the file. */
  flush() {
    let offset = 0
    try {
      while (offset < this.bufferLength) {
        offset += fs.writeSync(this.fd, this.buffer, offset, this.bufferLength - offset, this.bufferStart + offset)
      }
    } catch (error) {
      throw this.writeFailure(error)
    }
    this.writtenSinceWriteback += this.bufferLength
    this.bufferLength = 0
    if (this.writtenSinceWriteback >= WRITEBACK_BYTES && this.writeback === undefined) this.startWriteback()
  }

  /**
   * Has the kernel write what is written so far to the disk, on the thread pool, while the layers
   * go on streaming in: the image must be on disk before it is published (see `sync`), and leaving
   * it all to the end kept the pull waiting for the writeback of the whole image (bench image on a
   * loop-mounted ext4: cold pull 2.84 -> 2.65 s, warm 2.47 -> 2.27 s).
   *
   * Then the pages written back leave the page cache, so that the next writes reuse them: file
   * data is never read again, and on a host that gives freed memory back to its hypervisor every
   * new page costs a fault there too (writing 1.7 GB in 1 MiB writes on a loop-mounted ext4 took
   * 2.4-3.8 s of write calls; 1.1-1.7 s with each written-back part dropped).
   */
  private startWriteback() {
    this.writtenSinceWriteback = 0
    this.writebacksStarted++
    this.writeback = new Promise<void>((resolve) =>
      fs.fdatasync(this.fd, (error) => {
        if (error) this.writebackError ??= error
        resolve()
      })
    )
      .then(() => (this.writebackError === undefined ? dropPageCache(this.fd) : undefined))
      .then(() => {
        this.writeback = undefined
      })
  }

  /** Background writebacks started so far. */
  get writebacks() {
    return this.writebacksStarted
  }

  /** Once no background writeback uses the file descriptor any more. */
  settled(): Promise<void> {
    return this.writeback ?? Promise.resolve()
  }

  /** Everything written, on the disk; fails with what any writeback failed with. */
  async sync(): Promise<void> {
    this.flush()
    await this.settled()
    if (this.writebackError === undefined) {
      await new Promise<void>((resolve, reject) =>
        fs.fdatasync(this.fd, (error) => (error ? reject(error) : resolve()))
      )
      return
    }
    throw this.writeFailure(this.writebackError)
  }

  private writeFailure(error: unknown) {
    const full = (error as NodeJS.ErrnoException).code === "ENOSPC"
    return new ContentFailure(
      new FilesystemError({
        path: this.path,
        reason: full
          ? `the filesystem is full: the image's file data stopped at ${formatSize(this.dataBytes)} (${formatSize(this.freeBytes())} free)`
          : `write failed: ${describeSystemError(error)}`
      })
    )
  }

  private freeBytes(): number {
    try {
      const stats = fs.statfsSync(this.path)
      return stats.bavail * stats.bsize
    } catch {
      return 0
    }
  }

  /**
   * Counts newly allocated blocks against the filesystem's free space, so a tree that will not fit
   * fails as soon as a file's size says so, naming the figures, rather than at a write halfway into
   * it. The free space is read only after the new blocks use up half the room it left last time
   * (64 MiB at most): a statfs per file would cost a second on a 500k-file image. Blocks freed by a
   * later layer and handed out again are not counted: the image file already holds them.
   */
  private claim(runs: ReadonlyArray<BlockRun>) {
    let fresh = 0
    for (const run of runs) {
      const end = run.start + run.length
      if (end > this.freshFrom) {
        fresh += end - Math.max(run.start, this.freshFrom)
        this.freshFrom = end
      }
    }
    const bytes = fresh * BLOCK_SIZE
    this.dataBytes += bytes
    if (bytes <= this.spaceBudget) {
      this.spaceBudget -= bytes
      return
    }
    // Buffered bytes of earlier files are not on the filesystem yet either.
    const needed = bytes + this.bufferLength
    const free = this.freeBytes()
    if (free < needed) {
      throw new ContentFailure(
        new FilesystemError({
          path: this.path,
          reason: `not enough free space: the image's file data needs ${formatSize(this.dataBytes)} so far, ${formatSize(needed)} of it not yet written, and the filesystem has ${formatSize(free)} free`
        })
      )
    }
    this.spaceBudget = Math.min(SPACE_CHECK_BYTES, Math.floor((free - needed) / 2))
  }

  /** Writes `bytes` at byte `position` of the image, through the buffer. */
  writeAt(position: number, bytes: Uint8Array) {
    this.put(position, bytes.length, bytes)
  }

  /** Writes `length` zeros at byte `position` of the image, through the buffer. */
  zeroAt(position: number, length: number) {
    this.put(position, length, undefined)
  }

  /** `length` bytes at `position`: `bytes`, or zeros without it. */
  private put(position: number, length: number, bytes: Uint8Array | undefined) {
    if (this.bufferLength > 0 && position !== this.bufferStart + this.bufferLength) this.flush()
    let done = 0
    while (done < length) {
      if (this.bufferLength === 0) this.bufferStart = position + done
      const count = Math.min(length - done, BUFFER_BYTES - this.bufferLength)
      if (bytes === undefined) this.buffer.fill(0, this.bufferLength, this.bufferLength + count)
      // Most writes fit whole: no view of them is needed.
      else this.buffer.set(count === length ? bytes : bytes.subarray(done, done + count), this.bufferLength)
      this.bufferLength += count
      done += count
      if (this.bufferLength === BUFFER_BYTES) this.flush()
    }
  }

  begin(size: number, sparse?: ReadonlyArray<number>): ContentWriter {
    if (sparse !== undefined) return this.beginSparse(size, sparse)
    const runs = this.allocator.allocate(divideUp(size, BLOCK_SIZE))
    try {
      this.claim(runs)
    } catch (error) {
      this.allocator.free(runs)
      throw error
    }
    return new RunsWriter(this, this.path, size, runs)
  }

  /**
   * Only the blocks the map's data touches are allocated, so holes stay unallocated in the image;
   * within those blocks, the bytes of holes are written as zeros.
   */
  private beginSparse(size: number, map: ReadonlyArray<number>): ContentWriter {
    const runs: Array<BlockRun> = []
    const logical: Array<number> = []
    const ranges = touchedBlocks(map)
    try {
      for (let i = 0; i < ranges.length; i += 2) {
        let block = ranges[i]!
        for (const run of this.allocator.allocate(ranges[i + 1]!)) {
          runs.push(run)
          logical.push(block)
          block += run.length
        }
      }
      this.claim(runs)
    } catch (error) {
      this.allocator.free(runs)
      throw error
    }
    let position = 0
    // The first run that may hold `position` (positions only grow).
    let cursor = 0
    /** Writes `length` bytes at `position` (from `bytes`, else zeros) where blocks are allocated. */
    const put = (length: number, bytes: Uint8Array | undefined) => {
      if (position + length > size) {
        throw new ContentFailure(
          new FilesystemError({ path: this.path, reason: `file data longer than its ${size} bytes` })
        )
      }
      let done = 0
      while (done < length) {
        const at = position + done
        while (cursor < runs.length && (logical[cursor]! + runs[cursor]!.length) * BLOCK_SIZE <= at) cursor++
        if (cursor === runs.length) break
        const runStart = logical[cursor]! * BLOCK_SIZE
        if (at < runStart) {
          done = Math.min(length, runStart - position)
          continue
        }
        const count = Math.min(length - done, runStart + runs[cursor]!.length * BLOCK_SIZE - at)
        const physical = runs[cursor]!.start * BLOCK_SIZE + (at - runStart)
        if (bytes !== undefined) this.writeAt(physical, bytes.subarray(done, done + count))
        else this.zeroAt(physical, count)
        done += count
      }
      position += length
    }
    return {
      write: (chunk) => put(chunk.length, chunk),
      skip: (length) => put(length, undefined),
      finish: () => {
        if (position !== size) {
          throw new ContentFailure(
            new FilesystemError({ path: this.path, reason: `file data ended after ${position} of ${size} bytes` })
          )
        }
        // Zeros past the end, up to the end of the last allocated block.
        const last = runs.length - 1
        if (last >= 0) {
          const end = (logical[last]! + runs[last]!.length) * BLOCK_SIZE
          const tail = end - position
          if (tail > 0) {
            const physical = (runs[last]!.start + runs[last]!.length) * BLOCK_SIZE - tail
            this.zeroAt(physical, tail)
          }
        }
        return FileBlocks.of(size, runs, logical)
      },
      abandon: () => this.allocator.free(runs)
    }
  }

  release(content: StoredContent) {
    if (content instanceof FileBlocks) this.allocator.free(content.runs)
  }
}

/**
 * A non-sparse file's contents, written into its runs back to back. A class rather than closures:
 * one object per file instead of five (a 500k-file layer begins 500k of them). Its methods need
 * their receiver: callers keep the writer, not its methods.
 */
class RunsWriter implements ContentWriter {
  private written = 0
  private runIndex = 0
  private runOffset = 0

  constructor(
    private readonly draft: DraftContents,
    private readonly path: string,
    private readonly size: number,
    private readonly runs: ReadonlyArray<BlockRun>
  ) {}

  write(chunk: Uint8Array) {
    if (this.written + chunk.length > this.size) {
      throw new ContentFailure(
        new FilesystemError({ path: this.path, reason: `file data longer than its ${this.size} bytes` })
      )
    }
    let done = 0
    while (done < chunk.length) {
      const run = this.runs[this.runIndex]!
      const room = run.length * BLOCK_SIZE - this.runOffset
      const count = Math.min(room, chunk.length - done)
      this.draft.writeAt(
        run.start * BLOCK_SIZE + this.runOffset,
        done === 0 && count === chunk.length ? chunk : chunk.subarray(done, done + count)
      )
      done += count
      this.runOffset += count
      if (this.runOffset === run.length * BLOCK_SIZE) {
        this.runIndex++
        this.runOffset = 0
      }
    }
    this.written += chunk.length
  }

  skip(): never {
    throw new ContentFailure(new FilesystemError({ path: this.path, reason: "a hole in a file that is not sparse" }))
  }

  finish(): FileBlocks {
    if (this.written !== this.size) {
      throw new ContentFailure(
        new FilesystemError({ path: this.path, reason: `file data ended after ${this.written} of ${this.size} bytes` })
      )
    }
    const tail = this.size & (BLOCK_SIZE - 1)
    if (tail !== 0) {
      const last = this.runs[this.runs.length - 1]!
      this.draft.zeroAt((last.start + last.length) * BLOCK_SIZE - (BLOCK_SIZE - tail), BLOCK_SIZE - tail)
    }
    return FileBlocks.of(this.size, this.runs)
  }

  abandon() {
    this.draft.allocator.free(this.runs)
  }
}
