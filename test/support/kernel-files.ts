/** Kernel files for tests: a small but well-formed ELF64 vmlinux carrying a `Linux version` banner. */

/**
 * An x86-64 ELF64 executable header (no sections needed to be recognised), padding, then the banner
 * somewhere in the middle, as .rodata holds it in a real vmlinux.
 */
export const elfVmlinux = (release: string, paddingBytes = 4096): Buffer => {
  const header = Buffer.alloc(64)
  header.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]) // magic, 64-bit, little-endian, version 1, SysV
  header.writeUInt16LE(2, 16) // e_type: EXEC
  header.writeUInt16LE(0x3e, 18) // e_machine: x86-64
  header.writeUInt32LE(1, 20) // e_version
  header.writeBigUInt64LE(0x1000000n, 24) // e_entry
  header.writeUInt16LE(64, 52) // e_ehsize
  header.writeUInt16LE(56, 54) // e_phentsize
  header.writeUInt16LE(64, 58) // e_shentsize
  const banner = Buffer.from(`Linux version ${release} (test@banger) (gcc 12.2.0) #1 SMP PREEMPT_DYNAMIC\n\0`)
  return Buffer.concat([header, Buffer.alloc(paddingBytes, 0xcc), banner, Buffer.alloc(paddingBytes, 0)])
}
