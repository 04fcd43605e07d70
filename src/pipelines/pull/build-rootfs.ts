import { Effect } from "effect"
import { Ext4Tools } from "../../layers/ext4/ext4-tools.js"
import { type LayerFile, RootfsBuilder } from "../../layers/rootfs/rootfs-builder.js"
import { reportStage } from "./progress.js"
import { chooseImageSize } from "./size.js"

/**
 * Flatten → size → write metadata. File contents go straight into the image while the layers are
 * applied; the image file is removed if any step fails or is interrupted. The check (`e2fsck`) is
 * the caller's, so that it can run alongside other work.
 */
export const buildRootfs = Effect.fn("buildRootfs")(function* (
  layers: ReadonlyArray<LayerFile>,
  output: string,
  requestedSize: number | undefined
) {
  const builder = yield* RootfsBuilder
  const ext4 = yield* Ext4Tools
  return yield* Effect.scoped(
    Effect.gen(function* () {
      const draft = yield* ext4.openDraft({ output, maxBytes: requestedSize })
      yield* reportStage("flatten")
      const entries = yield* builder.flattenInto(layers, draft.contents)
      yield* reportStage("size")
      const image = yield* draft.plan(entries)
      const { sizeBytes } = yield* chooseImageSize({ image, entryCount: entries.length, requested: requestedSize })
      yield* reportStage("write-ext4")
      yield* image.write({ sizeBytes, label: "rootfs" })
      return sizeBytes
    })
  )
})
