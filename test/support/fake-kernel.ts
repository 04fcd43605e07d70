/** What a kernel file starts with as far as banger's magic check goes (an ELF header's magic), then filler. */
export const FAKE_KERNEL_BYTES = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.from(" kernel bytes")])
