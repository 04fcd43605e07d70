/**
 * Builds one image from a JSON request (`{ tree, output, sizeBytes }`, xattr values in base64) and
 * prints `built as <uid>`. Bundled with esbuild and run under setpriv by the integration test, to
 * show that a build by an unprivileged user still gets every owner and mode right.
 */

import * as fs from "node:fs"
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import type { TreeEntry } from "../../src/domain/tree.js"
import { Ext4Tools } from "../../src/layers/ext4/ext4-tools.js"

interface Request {
  readonly tree: {
    readonly dir: string
    readonly entries: ReadonlyArray<Omit<TreeEntry, "xattrs"> & { readonly xattrs: ReadonlyArray<[string, string]> }>
  }
  readonly output: string
  readonly sizeBytes: number
}

const request = JSON.parse(fs.readFileSync(process.argv[2]!, "utf8")) as Request
const entries: Array<TreeEntry> = request.tree.entries.map((entry) => ({
  ...entry,
  xattrs: entry.xattrs.map(([name, value]) => [name, Buffer.from(value, "base64")] as const)
}))

const program = Effect.gen(function* () {
  const tools = yield* Ext4Tools
  yield* tools.build({ tree: { dir: request.tree.dir, entries }, output: request.output, sizeBytes: request.sizeBytes })
})

Effect.runPromiseExit(program.pipe(Effect.provide(Ext4Tools.layer.pipe(Layer.provide(NodeContext.layer))))).then(
  (exit) => {
    if (exit._tag === "Success") {
      process.stdout.write(`built as ${process.getuid?.()}\n`)
    } else {
      process.stderr.write(`${String(exit.cause)}\n`)
      process.exitCode = 1
    }
  }
)
