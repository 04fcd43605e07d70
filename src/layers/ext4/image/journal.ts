/**
 * The internal journal's superblock (jbd2, big-endian), as e2fsprogs makes it; the rest of the
 * journal stays zeros (sparse in the image): an empty journal needs nothing else, and the kernel
 * turns on the checksum features it wants when it mounts.
 */
import { BLOCK_SIZE } from "./format.js"

const JBD2_MAGIC = 0xc03b3998
const SUPERBLOCK_V2 = 4

export const encodeJournalSuperblock = (blocks: number, uuid: Uint8Array): Uint8Array => {
  const bytes = new Uint8Array(BLOCK_SIZE)
  const view = new DataView(bytes.buffer)
  view.setUint32(0x00, JBD2_MAGIC)
  view.setUint32(0x04, SUPERBLOCK_V2)
  view.setUint32(0x0c, BLOCK_SIZE)
  view.setUint32(0x10, blocks)
  view.setUint32(0x14, 1)
  view.setUint32(0x18, 1)
  bytes.set(uuid, 0x30)
  view.setUint32(0x40, 1)
  return bytes
}
