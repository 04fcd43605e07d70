import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Effect } from "effect"
import { DigestMismatch, FilesystemError } from "../../domain/errors.js"
import type { Descriptor } from "../../domain/oci.js"
import type { ImageReference } from "../../domain/reference.js"
import { formatSize } from "../../domain/size.js"
import { parseDigest } from "../registry/digest.js"
import { RegistryClient } from "../registry/registry-client.js"
import { StatePaths } from "../state/state-paths.js"
import type { BlobCacheShape } from "./blob-cache.js"
import { downloadVerified, fsError } from "./download.js"
import { makeKeyedLock } from "./keyed-lock.js"

/** Bytes an unprivileged writer may still use on the filesystem holding `dir`. */
export const freeBytes = (dir: string) =>
  Effect.tryPromise({
    try: async () => {
      const stats = await fs.statfs(dir)
      return stats.bavail * stats.bsize
    },
    catch: fsError(dir)
  })

export const makeBlobCache = Effect.gen(function* () {
  const registry = yield* RegistryClient
  const paths = yield* StatePaths
  // Same-process callers of one digest queue up: the second finds the first one's file.
  const withDigestLock = makeKeyedLock()

  const checkedPath = (descriptor: Descriptor) => {
    const parsed = parseDigest(descriptor.digest)
    return parsed === undefined
      ? Effect.fail(
          new DigestMismatch({ expected: descriptor.digest, actual: "", reason: "not a valid sha256/sha512 digest" })
        )
      : Effect.succeed({ algorithm: parsed.algorithm, file: paths.blobPath(descriptor.digest) })
  }

  /** Whether the cache holds the blob: a file of the descriptor's size (it was verified before its rename). */
  const present = (file: string, descriptor: Descriptor) =>
    Effect.tryPromise({ try: () => fs.stat(file), catch: (error) => error as NodeJS.ErrnoException }).pipe(
      Effect.map((stat): "hit" | "stale" => (stat.isFile() && stat.size === descriptor.size ? "hit" : "stale")),
      Effect.catchAll((error) =>
        error.code === "ENOENT" ? Effect.succeed("missing" as const) : Effect.fail(fsError(file)(error))
      )
    )

  const ensure = Effect.fn("blobCache.ensure")(function* (
    reference: ImageReference,
    descriptor: Descriptor,
    onProgress: (bytesDone: number) => Effect.Effect<void> = () => Effect.void,
    onTempFile: (path: string) => Effect.Effect<void> = () => Effect.void
  ) {
    const { algorithm, file } = yield* checkedPath(descriptor)
    return yield* withDigestLock(
      descriptor.digest,
      Effect.gen(function* () {
        // Only here, under the digest's lock, may a file be removed: a check made without it could
        // find nothing, then remove the blob another pull renamed into place a moment later.
        const found = yield* present(file, descriptor)
        if (found === "hit") return file
        // A file of the wrong size is a leftover of something broken: drop it and fetch again.
        if (found === "stale")
          yield* Effect.tryPromise({ try: () => fs.rm(file, { force: true }), catch: fsError(file) })
        for (const dir of [path.dirname(file), paths.blobTmp]) {
          yield* Effect.tryPromise({ try: () => fs.mkdir(dir, { recursive: true }), catch: fsError(dir) })
        }
        return yield* Effect.scoped(
          downloadVerified({
            read: (onChunk) => registry.readBlob(reference, descriptor, onChunk),
            descriptor,
            algorithm,
            tempPath: paths.tempPath(paths.blobTmp, "blob"),
            finalPath: file,
            onProgress,
            onTempFile
          })
        )
      })
    )
  })

  const checkSpace = Effect.fn("blobCache.checkSpace")(function* (descriptors: ReadonlyArray<Descriptor>) {
    let missing = 0
    let count = 0
    for (const descriptor of descriptors) {
      const { file } = yield* Effect.orElseSucceed(checkedPath(descriptor), () => ({ file: "" }))
      if (file !== "" && (yield* present(file, descriptor)) === "hit") continue
      missing += descriptor.size
      count++
    }
    if (count === 0) return
    const available = yield* freeBytes(paths.root)
    if (available >= missing) return
    return yield* new FilesystemError({
      path: paths.root,
      reason: `not enough free space: ${count} layer download${count === 1 ? "" : "s"} need ${formatSize(missing)} (compressed sizes from the manifest; the unpacked image needs more), the filesystem has ${formatSize(available)} free`
    })
  })

  const verifiedDiffId = (digest: string) =>
    parseDigest(digest) === undefined
      ? Effect.succeed(undefined)
      : Effect.promise(() => fs.readFile(paths.diffIdPath(digest), "utf8").catch(() => undefined))

  // Not synced: a crash may leave the file empty or cut short, which matches no DiffID and so only
  // costs the next pull a hash.
  const rememberDiffId = Effect.fn("blobCache.rememberDiffId")(function* (digest: string, diffId: string) {
    if (parseDigest(digest) === undefined) return
    const file = paths.diffIdPath(digest)
    const temp = paths.tempPath(paths.blobTmp, "diff-id")
    yield* Effect.tryPromise({
      try: async () => {
        await fs.mkdir(path.dirname(file), { recursive: true })
        await fs.mkdir(paths.blobTmp, { recursive: true })
        await fs.writeFile(temp, diffId)
        await fs.rename(temp, file)
      },
      catch: fsError(file)
    }).pipe(Effect.tapError(() => Effect.promise(() => fs.rm(temp, { force: true }))))
  })

  return { ensure, checkSpace, verifiedDiffId, rememberDiffId } satisfies BlobCacheShape
})
