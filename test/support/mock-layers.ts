/**
 * Mocked services for pipeline unit tests: a registry that serves a fixed image, a blob cache
 * that hands out local files, a rootfs builder that writes a fixture tree instead of pulling, and
 * an ext4 builder that writes a placeholder image. Each records what it was asked to do.
 */

import * as fs from "node:fs"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { Ext4Error } from "../../src/domain/errors.js"
import type { ResolvedImage } from "../../src/domain/oci.js"
import type { TreeEntry } from "../../src/domain/tree.js"
import { BlobCache } from "../../src/layers/blob-cache/blob-cache.js"
import { DiskCopy } from "../../src/layers/disk/disk-copy.js"
import { Ext4Tools, type Ext4ToolsShape, makeExt4ToolsFake } from "../../src/layers/ext4/ext4-tools.js"
import { GuestFs } from "../../src/layers/guest/guest-fs.js"
import { HostResources } from "../../src/layers/host/host-resources.js"
import { Network } from "../../src/layers/network/network.js"
import { RegistryClient } from "../../src/layers/registry/registry-client.js"
import { RootfsBuilder } from "../../src/layers/rootfs/rootfs-builder.js"
import { Ssh } from "../../src/layers/ssh/ssh.js"
import { StatePaths } from "../../src/layers/state/state-paths.js"
import { Store } from "../../src/layers/store/store.js"
import { ProcessTable } from "../../src/layers/vmm/process-table.js"
import { Vmm } from "../../src/layers/vmm/vmm.js"
import { DefaultCatalogPath } from "../../src/pipelines/catalog/load-catalog.js"
import { PublishLock } from "../../src/pipelines/pull/publish.js"

export interface Calls {
  resolve: number
  ensure: Array<string>
  flatten: number
  build: Array<string>
  /** Digests whose DiffID the blob cache was told to remember. */
  rememberDiffId: Array<string>
}

export const newCalls = (): Calls => ({ resolve: 0, ensure: [], flatten: 0, build: [], rememberDiffId: [] })

export const fixtureImage: ResolvedImage = {
  manifestDigest: `sha256:${"a".repeat(64)}`,
  platform: { os: "linux", architecture: "amd64" },
  config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${"c".repeat(64)}`, size: 10 },
  runtime: { entrypoint: ["/entry"], cmd: ["serve", "--port", "80"], env: ["A=1"], workingDir: "/srv", user: "1000" },
  layers: [
    {
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: `sha256:${"1".repeat(64)}`,
      size: 100,
      compression: "gzip",
      diffId: `sha256:${"d".repeat(64)}`
    }
  ]
}

export const registryMock = (calls: Calls, image: ResolvedImage = fixtureImage) =>
  Layer.succeed(RegistryClient, {
    resolve: () => Effect.sync(() => void calls.resolve++).pipe(Effect.as(image)),
    readBlob: () => Effect.dieMessage("registryMock.readBlob: the pipeline should go through the blob cache")
  } as RegistryClient["Type"])

export const blobCacheMock = (calls: Calls, dir: string) =>
  Layer.succeed(BlobCache, {
    ensure: (_reference, descriptor, onProgress) =>
      Effect.gen(function* () {
        calls.ensure.push(descriptor.digest)
        if (onProgress) yield* onProgress(descriptor.size)
        return path.join(dir, descriptor.digest)
      }),
    checkSpace: () => Effect.void,
    verifiedDiffId: () => Effect.succeed(undefined),
    rememberDiffId: (digest) => Effect.sync(() => void calls.rememberDiffId.push(digest))
  })

export const fixtureEntries: ReadonlyArray<TreeEntry> = [
  { path: "", type: "directory", mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0, xattrs: [] },
  { path: "etc", type: "directory", mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0, xattrs: [] },
  { path: "etc/hostname", type: "file", mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 7, xattrs: [] }
]

/** Writes a small fixture tree (under `<state>/tmp`, removed with the scope) or its contents into a sink. */
export const rootfsFixture = (calls: Calls) =>
  Layer.effect(
    RootfsBuilder,
    Effect.map(StatePaths, (paths) => ({
      flatten: () =>
        Effect.acquireRelease(
          Effect.sync(() => {
            calls.flatten++
            const dir = paths.tempPath(paths.tmp, "tree")
            fs.mkdirSync(path.join(dir, "etc"), { recursive: true })
            fs.writeFileSync(path.join(dir, "etc/hostname"), "banger\n")
            return { dir, entries: fixtureEntries }
          }),
          (tree) => Effect.sync(() => fs.rmSync(tree.dir, { recursive: true, force: true }))
        ),
      flattenInto: (_layers, contents) =>
        Effect.sync(() => {
          calls.flatten++
          const writer = contents.begin(7)
          writer.write(Buffer.from("banger\n"))
          const content = writer.finish()
          return fixtureEntries.map((entry) => (entry.type === "file" ? { ...entry, content } : entry))
        })
    }))
  )

/** The Ext4Tools fake, recording each image written, or failing its write when `fail` is set. */
export const ext4Fake = (
  calls: Calls,
  options: { fail?: boolean; failCheck?: boolean; delay?: Effect.Effect<void> } = {}
) => {
  const fake = makeExt4ToolsFake()
  if (options.fail) fake.failBuild = new Ext4Error({ tool: "ext4 writer", reason: "no space left", stderr: "" })
  if (options.failCheck) fake.failCheck = new Ext4Error({ tool: "e2fsck", reason: "not clean (exit 4)", stderr: "" })
  const openDraft: Ext4ToolsShape["openDraft"] = (draftOptions) =>
    Effect.map(fake.tools.openDraft(draftOptions), (draft) => ({
      ...draft,
      plan: (entries, planOptions) =>
        Effect.map(draft.plan(entries, planOptions), (image) => ({
          ...image,
          write: (writeOptions) =>
            Effect.gen(function* () {
              calls.build.push(draftOptions.output)
              if (options.delay) yield* options.delay
              yield* image.write(writeOptions)
            })
        }))
    }))
  return Layer.succeed(Ext4Tools, { ...fake.tools, openDraft })
}

/**
 * Everything the real pull pipeline needs, over a real state dir and SQLite store, with the
 * registry, blob cache, rootfs builder and (by default) ext4 builder mocked as above.
 */
export const mockedPullServices = (root: string, calls: Calls, ext4: Layer.Layer<Ext4Tools> = ext4Fake(calls)) => {
  const paths = StatePaths.layer(root)
  return Layer.mergeAll(
    paths,
    Store.layer.pipe(Layer.provide(paths)),
    registryMock(calls),
    blobCacheMock(calls, root),
    rootfsFixture(calls).pipe(Layer.provide(paths)),
    ext4,
    PublishLock.layer,
    DiskCopy.layer.pipe(Layer.provide(NodeContext.layer)),
    Vmm.layerTest(),
    HostResources.layerTest(),
    GuestFs.layer.pipe(Layer.provide(NodeContext.layer)),
    ProcessTable.layerTest([]),
    Ssh.layerTest(),
    Network.layerTest(),
    NodeContext.layer,
    // No catalog file: plain names are references (see catalogForLookup).
    DefaultCatalogPath.layer(path.join(root, "no-catalog.json"))
  )
}
