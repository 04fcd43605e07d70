import { createHash } from "node:crypto"
import * as path from "node:path"
import { type CommandExecutor, FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { Ext4Error } from "../../domain/errors.js"
import { BLOCK_SIZE, INODE_RATIO, INODE_SIZE } from "./geometry.js"
import { runToolText } from "./process.js"

/**
 * mkfs reads /etc/mke2fs.conf, which differs between hosts (block size, inode ratio, features such
 * as orphan_file that older guest kernels cannot mount). banger passes its own profile instead, so
 * every host makes the same filesystem and geometry.ts can predict its layout. The usage types mkfs
 * picks by size are declared too, only so that it does not warn about them.
 */
export const mke2fsConfig = [
  "[defaults]",
  "\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr",
  "\tdefault_mntopts = acl,user_xattr",
  "\tenable_periodic_fsck = 0",
  `\tblocksize = ${BLOCK_SIZE}`,
  `\tinode_size = ${INODE_SIZE}`,
  `\tinode_ratio = ${INODE_RATIO}`,
  "",
  "[fs_types]",
  "\text4 = {",
  "\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize",
  "\t}",
  ...["floppy", "small", "default", "big", "huge"].flatMap((type) => [
    `\t${type} = {`,
    `\t\tinode_ratio = ${INODE_RATIO}`,
    "\t}"
  ]),
  ""
].join("\n")

export interface MkfsOptions {
  readonly output: string
  readonly sizeBytes: number
  readonly treeDir: string
  readonly inodes?: number | undefined
  readonly label?: string | undefined
  readonly uuid?: string | undefined
  readonly workDir: string
  readonly env: Readonly<Record<string, string>>
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** A directory hash seed derived from the UUID, so a given UUID always gives the same bytes. */
export const hashSeedFor = (uuid: string): string => {
  const hex = createHash("sha256").update(`banger-ext4-hash-seed:${uuid.toLowerCase()}`).digest("hex")
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20, 32)].join("-")
}

const invalid = (reason: string) => new Ext4Error({ tool: "mkfs.ext4", reason, stderr: "" })

export const mkfsArgs = (options: MkfsOptions): Array<string> => {
  // The image is a fresh sparse file, so it already reads as zeros: no discard, no wiping of inode
  // tables or journal (which would also make the file non-sparse). Host xattrs (SELinux labels...)
  // are never copied: the entries alone say which xattrs exist.
  const extended = ["assume_storage_prezeroed=1", "nodiscard", "no_copy_xattrs"]
  if (options.uuid !== undefined) extended.push(`hash_seed=${hashSeedFor(options.uuid)}`)
  return [
    "-F",
    "-q",
    "-t",
    "ext4",
    "-b",
    String(BLOCK_SIZE),
    "-I",
    String(INODE_SIZE),
    "-E",
    extended.join(","),
    ...(options.inodes !== undefined ? ["-N", String(options.inodes)] : []),
    ...(options.label !== undefined ? ["-L", options.label] : []),
    ...(options.uuid !== undefined ? ["-U", options.uuid.toLowerCase()] : []),
    "-d",
    options.treeDir,
    options.output
  ]
}

/** Creates `output` as a sparse file of `sizeBytes` and formats it with the tree's contents. */
export const makeFilesystem = Effect.fn("ext4.mkfs")(function* (
  options: MkfsOptions
): Effect.fn.Return<void, Ext4Error, CommandExecutor.CommandExecutor | FileSystem.FileSystem> {
  if (!Number.isSafeInteger(options.sizeBytes) || options.sizeBytes <= 0) {
    return yield* invalid(`size must be a positive whole number of bytes, got ${options.sizeBytes}`)
  }
  if (options.inodes !== undefined && (!Number.isSafeInteger(options.inodes) || options.inodes <= 0)) {
    return yield* invalid(`inode count must be a positive whole number, got ${options.inodes}`)
  }
  if (options.label !== undefined && Buffer.byteLength(options.label) > 16) {
    return yield* invalid(`label "${options.label}" is longer than ext4's 16 bytes`)
  }
  if (options.uuid !== undefined && !UUID.test(options.uuid)) {
    return yield* invalid(`"${options.uuid}" is not a UUID`)
  }
  const fs = yield* FileSystem.FileSystem
  const configPath = path.join(options.workDir, "mke2fs.conf")
  yield* Effect.gen(function* () {
    yield* fs.writeFileString(configPath, mke2fsConfig)
    // Truncating to zero first drops any old contents: the image must start out all zeros.
    yield* fs.writeFile(options.output, new Uint8Array())
    yield* fs.truncate(options.output, options.sizeBytes)
  }).pipe(Effect.mapError((error) => invalid(`could not create ${options.output}: ${error.message}`)))
  const result = yield* runToolText({
    tool: "mkfs.ext4",
    args: mkfsArgs(options),
    env: { ...options.env, MKE2FS_CONFIG: configPath }
  })
  if (result.exitCode !== 0) {
    return yield* new Ext4Error({
      tool: "mkfs.ext4",
      reason: `exited with ${result.exitCode} making a ${options.sizeBytes}-byte image of ${options.treeDir}`,
      stderr: `${result.stderr}${result.stdout}`
    })
  }
})
