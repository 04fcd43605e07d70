import * as path from "node:path"
import { DateTime, Effect } from "effect"
import type { CatalogKernel } from "../../domain/catalog.js"
import { Kernel } from "../../domain/image.js"
import type { ImageReference, Platform } from "../../domain/reference.js"
import { RootfsBuilder } from "../../layers/rootfs/rootfs-builder.js"
import { StatePaths } from "../../layers/state/state-paths.js"
import { lookupCatalog } from "../catalog/catalog-name.js"
import { fetchImage, rememberDiffIds } from "../pull/fetch.js"
import {
  defaultImageName,
  defaultPlatform,
  parsePlatform,
  parseReference,
  validateImageName
} from "../pull/parse-reference.js"
import { reportPhase, reportStage } from "../pull/progress.js"
import { relocate } from "../pull/stage-boot.js"
import { extractBootFiles } from "./extract-boot-files.js"
import { findInitrd, findKernelFile, findModules } from "./find-boot-files.js"
import { imagePaths } from "./image-paths.js"
import { inspectKernelFile } from "./inspect-kernel.js"
import { acquireKernelStaging, ensureKernelNameFree, publishKernel } from "./kernel-staging.js"

export interface KernelPullRequest {
  /** A reference, or the name of a catalog kernel (see `couldBeCatalogName`). */
  readonly reference: string
  readonly name?: string | undefined
  readonly platform?: string | undefined
  /** The request's catalog file; default the daemon's. */
  readonly catalog?: string | undefined
}

export interface KernelPullTarget {
  readonly reference: ImageReference
  readonly name: string
  readonly platform: Platform
}

/** What a kernel pull will fetch and publish as: a catalog entry wins over a reference of one word. */
export const kernelPullTarget = Effect.fn("kernelPullTarget")(function* (request: KernelPullRequest) {
  const entry = yield* lookupCatalog(request.reference, request.catalog, (catalog, name) => catalog.findKernel(name))
  const reference = yield* parseReference(entry?.ref ?? request.reference)
  const name = yield* validateImageName(request.name ?? entry?.name ?? defaultImageName(reference))
  const platform = request.platform === undefined ? defaultPlatform : yield* parsePlatform(request.platform)
  return { reference, name, platform } satisfies KernelPullTarget
})

/** A catalog kernel as a pull target under its own name. */
export const catalogKernelTarget = Effect.fn("catalogKernelTarget")(function* (entry: CatalogKernel) {
  return {
    reference: yield* parseReference(entry.ref),
    name: entry.name,
    platform: defaultPlatform
  } satisfies KernelPullTarget
})

/**
 * `banger kernel pull`: the image pull's resolve → fetch → flatten (same registry, cache and tar
 * code), then the kernel, initrd and modules found inside the flattened image are copied into a
 * staging dir, inspected, and published as `<state>/kernels/<name>/` with its row.
 */
export const pullKernelTarget = Effect.fn("pullKernelTarget")(function* (target: KernelPullTarget) {
  const builder = yield* RootfsBuilder
  const paths = yield* StatePaths
  const shown = target.reference.normalized
  yield* ensureKernelNameFree(target.name)
  yield* reportPhase("kernel", target.name)

  return yield* Effect.scoped(
    Effect.gen(function* () {
      const staging = yield* acquireKernelStaging()
      const fetched = yield* fetchImage(target.reference, target.platform)
      yield* reportStage("flatten")
      const tree = yield* Effect.raceFirst(
        builder.flatten(fetched.layers),
        Effect.zipRight(fetched.downloads, Effect.never)
      )
      yield* fetched.downloads
      yield* rememberDiffIds(fetched.layers)

      yield* reportStage("extract")
      const inImage = imagePaths(tree.entries)
      const kernelFile = yield* findKernelFile(inImage, shown)
      const info = yield* inspectKernelFile(path.join(tree.dir, kernelFile.entry.path), `${shown}:${kernelFile.name}`)
      const initrd = yield* findInitrd(inImage, shown)
      const modules = yield* findModules(inImage, shown, info.release)
      const copies = yield* extractBootFiles(
        tree,
        inImage,
        { kernel: kernelFile.entry.path, initrd: initrd?.entry.path, modules: modules?.path },
        staging
      )

      yield* reportStage("publish")
      const finalDir = paths.kernelDir(target.name)
      const kernel = new Kernel({
        name: target.name,
        kernel: relocate(copies.kernel, staging, finalDir)!,
        initrd: relocate(copies.initrd, staging, finalDir) ?? null,
        modules: relocate(copies.modules, staging, finalDir) ?? null,
        createdAt: DateTime.formatIso(yield* DateTime.now),
        ref: target.reference.normalized,
        manifestDigest: fetched.resolved.manifestDigest,
        version: modules?.version ?? info.release ?? null,
        format: info.format
      })
      return yield* publishKernel(staging, kernel)
    })
  )
})

export const pullKernel = Effect.fn("pullKernel")(function* (request: KernelPullRequest) {
  return yield* pullKernelTarget(yield* kernelPullTarget(request))
})
