/**
 * A typed array that grows a page at a time. One array grown by copying holds its old copy until
 * V8's next full GC (its backing store lives as long as the old object): on a 500k-entry tree the
 * model's arrays left 20-35 MiB of such copies at each growth, and the daemon's peak RSS jumped
 * with them. Pages are never copied, and the unused tail is less than one page.
 */
type Typed = Int32Array | Uint8Array | Uint16Array | Uint32Array

const PAGE_BITS = 16
const PAGE_LENGTH = 1 << PAGE_BITS
const PAGE_MASK = PAGE_LENGTH - 1

export class PagedArray {
  private readonly pages: Array<Typed> = []

  constructor(private readonly makePage: (length: number) => Typed) {}

  /** Room for indexes below `length`; new slots read 0. */
  ensure(length: number) {
    while (this.pages.length * PAGE_LENGTH < length) this.pages.push(this.makePage(PAGE_LENGTH))
  }

  get(index: number): number {
    return this.pages[index >>> PAGE_BITS]![index & PAGE_MASK]!
  }

  /** Stores `value` as the element type does (so a Uint32 page wraps what does not fit: read it back to check). */
  set(index: number, value: number) {
    this.pages[index >>> PAGE_BITS]![index & PAGE_MASK] = value
  }

  /** Drops every page. */
  clear() {
    this.pages.length = 0
  }
}

/**
 * Numbers that are unsigned 32-bit integers nearly always (ids, times, sizes) in Uint32 pages; the
 * rare other value (negative, fractional, 2^32 or more) is kept exactly in a map beside them.
 */
export class ExactUint32Array {
  private readonly pages = new PagedArray((length) => new Uint32Array(length))
  private readonly others = new Map<number, number>()

  ensure(length: number) {
    this.pages.ensure(length)
  }

  get(index: number): number {
    return this.others.size === 0 ? this.pages.get(index) : (this.others.get(index) ?? this.pages.get(index))
  }

  set(index: number, value: number) {
    this.pages.set(index, value)
    if (this.pages.get(index) !== value) this.others.set(index, value)
    else if (this.others.size > 0) this.others.delete(index)
  }
}
