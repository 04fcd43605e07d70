/** How an executable finds its libraries, read from its ELF program headers. */
export type Linkage = "static" | "dynamic" | "not-elf"

const PT_INTERP = 3

/**
 * `dynamic` when the program asks for an interpreter (the dynamic loader, PT_INTERP), else
 * `static`: a static-pie carries PT_DYNAMIC for its own relocations but needs no loader, so it
 * runs in a guest that has no libc, which is what matters here. `head` must hold the ELF header
 * and the program header table (the first 64 KiB always does for real executables).
 */
export const elfLinkage = (head: Uint8Array): Linkage => {
  if (head.length < 52 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) {
    return "not-elf"
  }
  const wide = head[4] === 2
  const little = head[5] === 1
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength)
  if (wide && head.length < 64) return "not-elf"
  const phoff = wide ? Number(view.getBigUint64(0x20, little)) : view.getUint32(0x1c, little)
  const phentsize = view.getUint16(wide ? 0x36 : 0x2a, little)
  const phnum = view.getUint16(wide ? 0x38 : 0x2c, little)
  if (phentsize < 4) return "not-elf"
  for (let index = 0; index < phnum; index++) {
    const at = phoff + index * phentsize
    if (at + 4 > head.length) return "not-elf"
    if (view.getUint32(at, little) === PT_INTERP) return "dynamic"
  }
  return "static"
}
