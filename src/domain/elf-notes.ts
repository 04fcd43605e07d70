/**
 * Just enough ELF to answer one question about a vmlinux: does it carry a PVH entry point (the Xen
 * note XEN_ELFNOTE_PHYS32_ENTRY)? QEMU's `-kernel` boots an ELF kernel only through it; Firecracker
 * needs no such note. 64-bit little-endian only, as x86_64 kernels are.
 */

const PT_NOTE = 4
const XEN_ELFNOTE_PHYS32_ENTRY = 18
const XEN_NAME = "Xen"

export interface Segment {
  readonly offset: number
  readonly size: number
}

/** The file ranges of the PT_NOTE segments, from the ELF and program headers in `head`. */
export const noteSegments = (head: Uint8Array): ReadonlyArray<Segment> => {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength)
  // ELFCLASS64 and little-endian, else not a kernel this reads.
  if (head.length < 64 || head[4] !== 2 || head[5] !== 1) return []
  const phoff = Number(view.getBigUint64(0x20, true))
  const phentsize = view.getUint16(0x36, true)
  const phnum = view.getUint16(0x38, true)
  const segments: Array<Segment> = []
  for (let index = 0; index < phnum; index++) {
    const at = phoff + index * phentsize
    if (at + 56 > head.length) break
    if (view.getUint32(at, true) !== PT_NOTE) continue
    segments.push({ offset: Number(view.getBigUint64(at + 8, true)), size: Number(view.getBigUint64(at + 32, true)) })
  }
  return segments
}

const align4 = (size: number) => (size + 3) & ~3

/** Whether a note segment's bytes hold the Xen PVH entry note. */
export const hasPvhEntry = (notes: Uint8Array): boolean => {
  const view = new DataView(notes.buffer, notes.byteOffset, notes.byteLength)
  for (let at = 0; at + 12 <= notes.length; ) {
    const nameSize = view.getUint32(at, true)
    const descSize = view.getUint32(at + 4, true)
    const type = view.getUint32(at + 8, true)
    const name = new TextDecoder().decode(notes.subarray(at + 12, at + 12 + Math.max(0, nameSize - 1)))
    if (name === XEN_NAME && type === XEN_ELFNOTE_PHYS32_ENTRY) return true
    at += 12 + align4(nameSize) + align4(descSize)
  }
  return false
}
