import * as path from "node:path"
import { DateTime, Effect } from "effect"
import { Image, ImageRuntime } from "../../domain/image.js"
import { formatPlatform } from "../../domain/reference.js"
import { Ext4Tools } from "../../layers/ext4/ext4-tools.js"
import { StatePaths } from "../../layers/state/state-paths.js"
import { lookupCatalog } from "../catalog/catalog-name.js"
import { buildRootfs } from "./build-rootfs.js"
import { fetchImage, rememberDiffIds } from "./fetch.js"
import {
  defaultImageName,
  defaultPlatform,
  parsePlatform,
  parseReference,
  validateImageName
} from "./parse-reference.js"
import { reportPhase, reportStage } from "./progress.js"
import { ensureNameFree, publishImage } from "./publish.js"
import { checkKernelSource, type KernelSource, resolveKernelInputs } from "./resolve-kernel.js"
import { parseSize } from "./size.js"
import { relocate, stageBootArtifacts } from "./stage-boot.js"
import { acquireStaging } from "./staging.js"

export interface PullRequest {
  readonly reference: string
  readonly name?: string | undefined
  readonly size?: string | undefined
  readonly platform?: string | undefined
  readonly kernel?: KernelSource | undefined
  /** The request's catalog file; default the daemon's. */
  readonly catalog?: string | undefined
  /**
   * Report the image phase even when no kernel was pulled before it: a pull nested in another
   * operation (`vm create`) whose own stages follow, so the pull's stages must be told apart.
   */
  readonly announce?: boolean | undefined
}

/**
 * What a pull makes. A plain name (no `/`, `:` or `@`) that matches a catalog image exactly is
 * that entry: its ref, its name, and its catalog kernel unless the request names a kernel; any
 * other input is a reference (so `debian` is Docker Hub's unless the catalog lists a `debian`).
 */
export const imagePullTarget = Effect.fn("imagePullTarget")(function* (request: PullRequest) {
  const entry = yield* lookupCatalog(request.reference, request.catalog, (catalog, name) => catalog.findImage(name))
  const reference = yield* parseReference(entry?.ref ?? request.reference)
  const name = yield* validateImageName(request.name ?? entry?.name ?? defaultImageName(reference))
  const kernel: KernelSource | undefined =
    request.kernel ?? (entry === undefined ? undefined : { _tag: "Stored", name: entry.kernel })
  return { reference, name, kernel }
})

export const ROOTFS_FILE = "rootfs.ext4"

/**
 * `banger image pull`: every input is validated before the first byte is downloaded; from the
 * staging dir on, any failure or interruption rolls back to exactly the state before the pull.
 */
export const pullImage = Effect.fn("pullImage")(function* (request: PullRequest) {
  const paths = yield* StatePaths
  const { reference, name, kernel: kernelSource } = yield* imagePullTarget(request)
  const platform = request.platform === undefined ? defaultPlatform : yield* parsePlatform(request.platform)
  const requestedSize = request.size === undefined ? undefined : yield* parseSize(request.size)
  yield* ensureNameFree(name)
  yield* checkKernelSource(kernelSource, request.catalog)

  return yield* Effect.scoped(
    Effect.gen(function* () {
      // A catalog kernel not yet local is pulled first, in this scope: a later failure removes it.
      const kernel = yield* resolveKernelInputs(kernelSource, request.catalog)
      if (kernel.pulled || request.announce === true) yield* reportPhase("image", name)
      const staging = yield* acquireStaging()
      const fetched = yield* fetchImage(reference, platform)
      const rootfs = path.join(staging.dir, ROOTFS_FILE)
      // Flattening reads the layers as they download; a failed download ends it at once.
      const sizeBytes = yield* Effect.raceFirst(
        buildRootfs(fetched.layers, rootfs, requestedSize),
        Effect.zipRight(fetched.downloads, Effect.never)
      )

      yield* reportStage("stage-boot")
      // The image is checked (e2fsck, a process of its own) while the boot artifacts are copied and
      // the downloads finish verifying and syncing their blobs, all before anything is published.
      // Each runs to its end even when another fails: a copy cut short by a failure elsewhere would
      // still land in the staging dir while it is being removed.
      const outcomes = yield* Effect.all(
        [
          fetched.downloads,
          Effect.flatMap(Ext4Tools, (ext4) => ext4.check(rootfs)),
          stageBootArtifacts(kernel, staging.dir)
        ],
        { concurrency: "unbounded", mode: "either" }
      )
      // A failed download explains a failed check, so it is the one reported.
      const [, , boot] = yield* Effect.all(outcomes)
      yield* rememberDiffIds(fetched.layers)
      yield* reportStage("publish")
      const finalDir = paths.imageDir(staging.id)
      const image = new Image({
        id: staging.id,
        name,
        ref: reference.normalized,
        manifestDigest: fetched.resolved.manifestDigest,
        platform: formatPlatform(fetched.resolved.platform),
        managed: true,
        rootfs: path.join(finalDir, ROOTFS_FILE),
        kernel: relocate(boot.kernel, staging.dir, finalDir)!,
        initrd: relocate(boot.initrd, staging.dir, finalDir) ?? null,
        modules: relocate(boot.modules, staging.dir, finalDir) ?? null,
        sizeBytes,
        createdAt: DateTime.formatIso(yield* DateTime.now),
        runtime: new ImageRuntime(fetched.resolved.runtime),
        kernelName: kernel.kernelName ?? null
      })
      return yield* publishImage(staging.dir, finalDir, image)
    })
  )
})
