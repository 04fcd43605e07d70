import * as fs from "node:fs/promises"
import { Effect } from "effect"
import { Ext4Error } from "../../domain/errors.js"
import type { BuildExt4Options, Ext4ToolsShape } from "./ext4-tools.js"

export const FAKE_IMAGE_MAGIC = "banger-fake-ext4"

export interface Ext4ToolsFake {
  readonly tools: Ext4ToolsShape
  readonly builds: Array<BuildExt4Options>
  readonly checks: Array<string>
  /** Set to make the next calls fail (they are still recorded). */
  failBuild: Ext4Error | undefined
  failCheck: Ext4Error | undefined
}

/**
 * A stand-in for Ext4Tools. `build` writes `banger-fake-ext4 {json}` (size, inodes, label, uuid,
 * entry count) into the output, extended sparsely to `sizeBytes`; `check` accepts a file that starts
 * with that marker and fails for anything else, so a pipeline that checks the wrong path is caught.
 */
export const makeExt4ToolsFake = (): Ext4ToolsFake => {
  const fake: Ext4ToolsFake = {
    builds: [],
    checks: [],
    failBuild: undefined,
    failCheck: undefined,
    tools: {
      build: (options) =>
        Effect.suspend(() => {
          fake.builds.push(options)
          if (fake.failBuild !== undefined) return Effect.fail(fake.failBuild)
          const summary = {
            sizeBytes: options.sizeBytes,
            inodes: options.inodes,
            label: options.label,
            uuid: options.uuid,
            entries: options.tree.entries.length
          }
          return Effect.tryPromise({
            try: async () => {
              const marker = Buffer.from(`${FAKE_IMAGE_MAGIC} ${JSON.stringify(summary)}\n`)
              await fs.writeFile(options.output, marker)
              if (options.sizeBytes > marker.length) await fs.truncate(options.output, options.sizeBytes)
            },
            catch: (error) =>
              new Ext4Error({ tool: "mkfs.ext4", reason: `fake build failed: ${String(error)}`, stderr: "" })
          })
        }),
      check: (image) =>
        Effect.suspend(() => {
          fake.checks.push(image)
          if (fake.failCheck !== undefined) return Effect.fail(fake.failCheck)
          return Effect.tryPromise({
            try: async () => {
              const handle = await fs.open(image, "r")
              try {
                const head = Buffer.alloc(FAKE_IMAGE_MAGIC.length)
                await handle.read(head, 0, head.length, 0)
                return head.toString() === FAKE_IMAGE_MAGIC
              } finally {
                await handle.close()
              }
            },
            catch: (error) => String(error)
          }).pipe(
            Effect.catchAll((reason) => Effect.succeed(reason)),
            Effect.flatMap((result) =>
              result === true
                ? Effect.void
                : new Ext4Error({
                    tool: "e2fsck",
                    reason: `${image} is not an image built by the fake`,
                    stderr: typeof result === "string" ? result : ""
                  })
            )
          )
        })
    }
  }
  return fake
}
