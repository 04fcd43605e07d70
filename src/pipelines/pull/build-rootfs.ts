import { Effect } from "effect"
import { Ext4Tools } from "../../layers/ext4/ext4-tools.js"
import { type LayerFile, RootfsBuilder } from "../../layers/rootfs/rootfs-builder.js"
import { reportStage } from "./progress.js"
import { chooseImageSize } from "./size.js"

/**
 * Flatten → size → mkfs → fsck. The flattened tree lives only inside this step's scope, so it is
 * gone as soon as the image is built (or the build failed).
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
      yield* reportStage("flatten")
      const tree = yield* builder.flatten(layers)
      yield* reportStage("size")
      const { sizeBytes, inodes } = yield* chooseImageSize({ entries: tree.entries, requested: requestedSize })
      yield* reportStage("mkfs")
      yield* ext4.build({ tree, output, sizeBytes, inodes, label: "rootfs" })
      yield* ext4.check(output)
      return sizeBytes
    })
  )
})
