import * as fs from "node:fs"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { Ext4Tools } from "../../src/layers/ext4/ext4-tools.js"
import { GuestFs } from "../../src/layers/guest/guest-fs.js"
import { type TreeSpec, writeTree } from "./ext4-tree.js"

const Live = Layer.mergeAll(Ext4Tools.layer, GuestFs.layer).pipe(Layer.provideMerge(NodeContext.layer))

/** Runs `effect` over the real Ext4Tools and GuestFs. */
export const runGuest = <A, E>(effect: Effect.Effect<A, E, Ext4Tools | GuestFs | NodeContext.NodeContext>) =>
  Effect.runPromise(Effect.provide(effect, Live))

/** A 64 MiB ext4 image of `specs`, built by banger's writer in a fresh dir under `work`. */
export const guestImage = async (work: string, name: string, specs: ReadonlyArray<TreeSpec>) => {
  const dir = fs.mkdtempSync(path.join(work, `${name}-`))
  const tree = writeTree(path.join(dir, "tree"), specs)
  const output = path.join(dir, "rootfs.ext4")
  await runGuest(Effect.flatMap(Ext4Tools, (tools) => tools.build({ tree, output, sizeBytes: 64 * 2 ** 20 })))
  return output
}
