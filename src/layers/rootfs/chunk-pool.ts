/**
 * Read buffers for a layer's decompressed bytes, handed back by the byte reader once it has moved
 * past them (see `ByteReader`: what it hands out is valid until its next fill), so that a layer
 * is read into a few buffers over and over instead of a new one per read.
 *
 * A new buffer per read cost more than its allocation: many outlived two young-generation GCs
 * while they waited to be parsed, and an old-generation ArrayBuffer counts toward V8's old
 * generation until a full GC frees it. In a daemon whose heap limit had settled low after a pull
 * (its full GCs then run at ~30 MiB), the next pull of the bench image ran 12-20 full GCs back to
 * back, one per few MiB of promoted chunks, and its V8 worker threads used more CPU than its main
 * thread; read into reused buffers, it ran none.
 *
 * Only buffers the pool made come back to it, and at most `keep` of them are known at once: a
 * consumer that never gives them back just gets fresh ones, collected as usual.
 */
export class ChunkPool {
  private readonly free: Array<Buffer> = []
  private readonly mine = new Map<ArrayBufferLike, Buffer>()

  constructor(
    readonly size: number,
    private readonly keep: number
  ) {}

  /** A buffer to read into: one given back, or a new one. */
  readonly take = (): Buffer => {
    const reused = this.free.pop()
    if (reused !== undefined) return reused
    const fresh = Buffer.allocUnsafeSlow(this.size)
    if (this.mine.size < this.keep) this.mine.set(fresh.buffer, fresh)
    return fresh
  }

  /** `chunk` (a view of a buffer from `take`) is no longer read by anyone: its buffer can be reused. */
  readonly release = (chunk: Uint8Array): void => {
    const buffer = this.mine.get(chunk.buffer)
    if (buffer !== undefined && !this.free.includes(buffer)) this.free.push(buffer)
  }
}
