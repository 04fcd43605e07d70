/**
 * Flattening straight into an ext4 image, as the pull does: contents land in the image's blocks,
 * blocks freed by whiteouts and replacements are reused, and the image read back holds exactly
 * the final tree. Hostile layers fail the same way as into a directory, leaving no image.
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { asTreeEntries } from "../../../src/domain/entry-list.js"
import { Ext4Tools } from "../../../src/layers/ext4/ext4-tools.js"
import type { LayerFile } from "../../../src/layers/rootfs/rootfs-builder.js"
import { RootfsBuilder } from "../../../src/layers/rootfs/rootfs-builder.js"
import { compareImage, inspectImage, readFilesFromImage } from "../../support/ext4-inspect.js"
import { builderLayer, type Sandbox, sandbox, specLayer } from "./harness.js"

const ToolsLive = Ext4Tools.layer.pipe(Layer.provideMerge(NodeContext.layer))

/** Flattens into a fresh image, writes and checks it; returns the image path and the entries. */
const flattenToImage = (box: Sandbox, layers: ReadonlyArray<LayerFile>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const tools = yield* Ext4Tools
      const builder = yield* RootfsBuilder
      const output = path.join(box.root, "rootfs.ext4")
      const draft = yield* tools.openDraft({ output, uuid: "0e9a5a38-5b0e-4a43-9c2a-3f55b1b0a001" })
      const entries = yield* builder.flattenInto(layers, draft.contents)
      const image = yield* draft.plan(entries)
      yield* image.write({ sizeBytes: 64 * 2 ** 20 })
      yield* tools.check(output)
      return { output, entries, requiredBytes: image.requiredBytes }
    })
  ).pipe(Effect.provide(builderLayer(box)))

describe("flattening into an image", () => {
  it.scopedLive("reuses the blocks of removed files and keeps what other names still hold", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const big = randomBytes(300_000)
      const small = randomBytes(9000)
      const replacement = randomBytes(9000)
      const layers = [
        yield* specLayer(box, [
          { type: "directory", name: "d" },
          { type: "file", name: "d/big", content: big },
          { type: "hardlink", name: "d/big-link", target: "d/big" },
          { type: "file", name: "d/small", content: small },
          { type: "file", name: "gone/deep/file", content: randomBytes(50_000) }
        ]),
        yield* specLayer(box, [
          // The big file's first name goes; its other name keeps the contents.
          { type: "file", name: "d/.wh.big" },
          { type: "file", name: "d/.wh.small" },
          { type: "file", name: ".wh.gone" },
          { type: "file", name: "d/new", content: replacement },
          { type: "file", name: "d/big-link", content: "now a small file of its own" }
        ]),
        yield* specLayer(box, [{ type: "file", name: "d/last", content: small }])
      ]
      const { output, entries } = yield* flattenToImage(box, layers)
      const image = yield* inspectImage(output)
      expect(compareImage(asTreeEntries(entries), image)).toEqual([])
      const files = yield* readFilesFromImage(
        output,
        image.filter((entry) => entry.type === "file")
      )
      expect(Object.fromEntries([...files].map(([name, bytes]) => [name, bytes.length]))).toEqual({
        "d/big-link": 27,
        "d/new": 9000,
        "d/last": 9000
      })
      expect(files.get("d/new")!.equals(replacement)).toBe(true)
      expect(files.get("d/last")!.equals(small)).toBe(true)
      expect(files.get("d/big-link")!.toString()).toBe("now a small file of its own")
    }).pipe(Effect.provide(ToolsLive))
  )

  it.scopedLive("keeps the contents of a file whose other name survives its first one's whiteout", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const content = randomBytes(70_000)
      const layers = [
        yield* specLayer(box, [
          { type: "file", name: "a", content },
          { type: "hardlink", name: "b", target: "a" }
        ]),
        // If a's blocks were freed with its first name, this file would take them over.
        yield* specLayer(box, [
          { type: "file", name: ".wh.a" },
          { type: "file", name: "c", content: randomBytes(70_000) }
        ])
      ]
      const { output } = yield* flattenToImage(box, layers)
      const image = yield* inspectImage(output)
      const files = yield* readFilesFromImage(
        output,
        image.filter((entry) => entry.type === "file")
      )
      expect(files.get("b")!.equals(content)).toBe(true)
      expect(image.find((entry) => entry.path === "b")!.links).toBe(1)
    }).pipe(Effect.provide(ToolsLive))
  )

  it.scopedLive("a hostile layer fails the flatten and the image is removed with its scope", () =>
    Effect.gen(function* () {
      const box = yield* sandbox
      const layers = [yield* specLayer(box, [{ type: "file", name: "../escape", content: "x" }])]
      const error = yield* Effect.flip(flattenToImage(box, layers))
      expect(error._tag).toBe("UnsafeLayerEntry")
      expect(fs.existsSync(path.join(box.root, "rootfs.ext4"))).toBe(false)
      expect(fs.readdirSync(box.root).sort()).toEqual(["blobs", "outside"])
    }).pipe(Effect.provide(ToolsLive))
  )
})
