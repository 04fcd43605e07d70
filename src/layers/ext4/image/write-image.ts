/**
 * The last step of an image: journal, inode tables, bitmaps, group descriptors and superblocks
 * (with their backups), written after the contents and the tree's own blocks.
 */
import { crc32cUpdate } from "./crc32c.js"
import type { DraftContents } from "./draft-contents.js"
import { buildExtentTree, extentsOf } from "./extents.js"
import {
  BG_INODE_ZEROED,
  BLOCK_SIZE,
  BLOCKS_PER_GROUP,
  DESC_SIZE,
  EXTENTS_FL,
  hasSuperblockBackup,
  INODE_SIZE,
  JOURNAL_INODE,
  MAX_INODES_PER_GROUP,
  S_IFREG
} from "./format.js"
import { encodeInode, type InodeFields, inodeSeed } from "./inode.js"
import { encodeJournalSuperblock } from "./journal.js"
import { type Geometry, placeMetadata } from "./layout.js"
import { type EntryFields, type TreePlan, TYPE_BITS } from "./plan.js"
import { encodeDescriptor, encodeSuperblock, type GroupDescriptor, SUPERBLOCK_SIZE } from "./superblock.js"

export interface ImageIdentity {
  readonly uuid: Uint8Array
  readonly fsSeed: number
  readonly hashSeed: Uint8Array
  readonly label: Uint8Array
  readonly timestamp: number
}

const EMPTY_INODE: InodeFields = {
  mode: 0,
  uid: 0,
  gid: 0,
  size: 0,
  links: 0,
  time: 0,
  flags: 0,
  iBlock: new Uint8Array(60),
  blocks: 0,
  xattrBlock: 0,
  inlineXattrs: undefined
}

export const writeImage = (contents: DraftContents, plan: TreePlan, geometry: Geometry, identity: ImageIdentity) => {
  const allocator = contents.allocator
  const { fsSeed } = identity
  const placement = placeMetadata(allocator.next, geometry, allocator.reserve)
  for (const run of [...placement.journal, ...placement.journalTree]) allocator.mark(run)
  for (const start of placement.inodeTables) allocator.mark({ start, length: geometry.inodeTableBlocks })
  for (const start of [...placement.blockBitmaps, ...placement.inodeBitmaps]) allocator.mark({ start, length: 1 })
  allocator.next = placement.end
  for (let group = 0; group < geometry.groups; group++) {
    if (hasSuperblockBackup(group))
      allocator.mark({ start: group * BLOCKS_PER_GROUP, length: 1 + geometry.descriptorBlocks })
  }

  let journalInode: InodeFields | undefined
  let journal: { iBlock: Uint8Array; bytes: number } | undefined
  if (geometry.journalBlocks > 0) {
    const treeBlocks = placement.journalTree.flatMap((run) =>
      Array.from({ length: run.length }, (_, i) => run.start + i)
    )
    const root = new Uint8Array(60)
    const tree = buildExtentTree(extentsOf(placement.journal), treeBlocks, inodeSeed(fsSeed, JOURNAL_INODE), root)
    for (const block of tree) contents.writeAt(block.block * BLOCK_SIZE, block.bytes)
    contents.writeAt(
      placement.journal[0]!.start * BLOCK_SIZE,
      encodeJournalSuperblock(geometry.journalBlocks, identity.uuid)
    )
    const bytes = geometry.journalBlocks * BLOCK_SIZE
    journalInode = {
      ...EMPTY_INODE,
      mode: S_IFREG | 0o600,
      size: bytes,
      links: 1,
      time: identity.timestamp,
      flags: EXTENTS_FL,
      iBlock: root,
      blocks: (geometry.journalBlocks + tree.length) * (BLOCK_SIZE / 512)
    }
    journal = { iBlock: root, bytes }
  }

  const planned = plan.inodes
  // One scratch record for every inode of the tree (encodeInode copies it out at once): an object
  // or two per inode was most of what writing a 500k-inode table allocated.
  const iBlock = new Uint8Array(60)
  const iBlockView = new DataView(iBlock.buffer)
  const entry: EntryFields = { type: "file", mode: 0, uid: 0, gid: 0, mtime: 0 }
  const inode: { -readonly [K in keyof InodeFields]: InodeFields[K] } = { ...EMPTY_INODE, iBlock }
  const fieldsOf = (ino: number): InodeFields | undefined => {
    if (ino >= planned.count || !planned.readFields(ino, entry)) return undefined
    planned.iBlock(ino, iBlock, iBlockView)
    inode.mode = TYPE_BITS[entry.type] | (entry.mode & 0o7777)
    inode.uid = entry.uid
    inode.gid = entry.gid
    inode.size = planned.size(ino)
    inode.links = planned.links[ino]!
    inode.time = entry.mtime
    inode.flags = planned.extents[ino] === 1 ? EXTENTS_FL : 0
    inode.blocks = planned.blocks[ino]! * (BLOCK_SIZE / 512)
    inode.xattrBlock = planned.xattrBlock[ino]!
    inode.inlineXattrs = planned.inlineXattrs.get(ino)
    return inode
  }

  const ipg = geometry.inodesPerGroup
  // One table reused by every group (writeAt copies it out): a new 2 MiB array per group left
  // ~60 of them for V8 to collect on a 500k-inode tree, and the daemon's peak RSS rose with them.
  const tableBuffer = new Uint8Array(Math.min(ipg, Math.max(0, plan.lastInode)) * INODE_SIZE)
  const tableView = new DataView(tableBuffer.buffer, tableBuffer.byteOffset, tableBuffer.byteLength)
  const descriptors: Array<GroupDescriptor> = []
  let freeBlocks = 0
  let freeInodes = 0
  for (let group = 0; group < geometry.groups; group++) {
    const firstIno = group * ipg + 1
    const usedInGroup = Math.max(0, Math.min(ipg, plan.lastInode - group * ipg))
    if (usedInGroup > 0) {
      const table = tableBuffer.subarray(0, usedInGroup * INODE_SIZE)
      for (let index = 0; index < usedInGroup; index++) {
        const ino = firstIno + index
        const fields = ino === JOURNAL_INODE ? journalInode : fieldsOf(ino)
        encodeInode(tableBuffer, tableView, index * INODE_SIZE, ino, fields ?? EMPTY_INODE, fsSeed)
      }
      contents.writeAt(placement.inodeTables[group]! * BLOCK_SIZE, table)
    }
    let usedDirs = 0
    for (let ino = firstIno; ino < firstIno + usedInGroup; ino++) if (planned.isDirectory(ino)) usedDirs++

    const inodeBitmap = new Uint8Array(BLOCK_SIZE)
    for (let bit = 0; bit < usedInGroup; bit++) inodeBitmap[bit >> 3]! |= 1 << (bit & 7)
    for (let bit = ipg; bit < MAX_INODES_PER_GROUP; bit++) inodeBitmap[bit >> 3]! |= 1 << (bit & 7)
    const blockBitmap = allocator.groupBitmap(group, geometry.blocks)
    const groupBlocks = Math.min(BLOCKS_PER_GROUP, geometry.blocks - group * BLOCKS_PER_GROUP)
    let used = 0
    for (let bit = 0; bit < groupBlocks; bit++) if (blockBitmap[bit >> 3]! & (1 << (bit & 7))) used++
    contents.writeAt(placement.blockBitmaps[group]! * BLOCK_SIZE, blockBitmap)
    contents.writeAt(placement.inodeBitmaps[group]! * BLOCK_SIZE, inodeBitmap)
    freeBlocks += groupBlocks - used
    freeInodes += ipg - usedInGroup
    descriptors.push({
      blockBitmap: placement.blockBitmaps[group]!,
      inodeBitmap: placement.inodeBitmaps[group]!,
      inodeTable: placement.inodeTables[group]!,
      freeBlocks: groupBlocks - used,
      freeInodes: ipg - usedInGroup,
      usedDirs,
      flags: BG_INODE_ZEROED,
      blockBitmapCsum: crc32cUpdate(fsSeed, blockBitmap, 0, BLOCKS_PER_GROUP / 8),
      inodeBitmapCsum: crc32cUpdate(fsSeed, inodeBitmap, 0, ipg / 8),
      itableUnused: ipg - usedInGroup
    })
  }

  const table = new Uint8Array(geometry.descriptorBlocks * BLOCK_SIZE)
  for (const [group, descriptor] of descriptors.entries()) {
    encodeDescriptor(table.subarray(group * DESC_SIZE), group, descriptor, fsSeed)
  }
  const fields = {
    blocks: geometry.blocks,
    inodes: geometry.inodes,
    inodesPerGroup: ipg,
    freeBlocks,
    freeInodes,
    reservedBlocks: Math.floor(geometry.blocks * 0.05),
    timestamp: identity.timestamp,
    uuid: identity.uuid,
    label: identity.label,
    hashSeed: identity.hashSeed,
    journal
  }
  for (let group = 0; group < geometry.groups; group++) {
    if (!hasSuperblockBackup(group)) continue
    const start = group * BLOCKS_PER_GROUP * BLOCK_SIZE
    const superblock = encodeSuperblock(fields, group)
    // The primary sits 1024 bytes into block 0, after the boot sector; backups start their block.
    contents.writeAt(group === 0 ? start + SUPERBLOCK_SIZE : start, superblock)
    contents.writeAt(start + BLOCK_SIZE, table)
  }
  contents.flush()
}
