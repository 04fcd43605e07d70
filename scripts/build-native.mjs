/**
 * `npm run build`'s first step: native/peercred.c → dist/native/peercred.node, the daemon's one
 * native addon (the peer credentials of its socket's clients). A single C file against Node's own
 * headers (node_api.h, shipped with Node under <prefix>/include/node) needs no node-gyp or python:
 * `cc -shared`, and the N-API symbols resolve against the running node when it is loaded.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const source = path.join(root, "native", "peercred.c")
const output = path.join(root, "dist", "native", "peercred.node")

const candidates = [
  path.resolve(path.dirname(process.execPath), "..", "include", "node"),
  process.config.variables.node_prefix && path.join(process.config.variables.node_prefix, "include", "node"),
  "/usr/include/node"
].filter(Boolean)
const include = candidates.find((dir) => fs.existsSync(path.join(dir, "node_api.h")))
if (include === undefined) {
  console.error(`build-native: node_api.h not found (looked in ${candidates.join(", ")}); install Node's headers`)
  process.exit(1)
}
fs.mkdirSync(path.dirname(output), { recursive: true })
// Built beside, then renamed: a failed compile never leaves a half-written addon to be loaded.
const partial = `${output}.partial`
execFileSync(
  process.env.CC ?? "cc",
  ["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-std=c11", "-I", include, "-o", partial, source],
  { stdio: "inherit" }
)
fs.renameSync(partial, output)
