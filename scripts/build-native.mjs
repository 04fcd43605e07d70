/**
 * `npm run build`'s first step: each native/NAME.c → dist/native/NAME.node, the daemon's native
 * addons (peercred: the peer credentials of its socket's clients; pipe: a pipe with a big buffer
 * for decompressor children, and the tee thread; malloc-trim: glibc's malloc_trim, after each
 * operation; page-cache: written-back image pages dropped from the page cache). A single C file
 * against Node's own headers (node_api.h, shipped with Node under <prefix>/include/node) needs no
 * node-gyp or python: `cc -shared`, and the N-API symbols resolve against the running node when it
 * is loaded.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const sources = fs
  .readdirSync(path.join(root, "native"))
  .filter((name) => name.endsWith(".c"))
  .sort()

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
fs.mkdirSync(path.join(root, "dist", "native"), { recursive: true })
for (const source of sources) {
  const output = path.join(root, "dist", "native", source.replace(/\.c$/, ".node"))
  // Built beside, then renamed: a failed compile never leaves a half-written addon to be loaded.
  const partial = `${output}.partial`
  execFileSync(
    process.env.CC ?? "cc",
    [
      "-shared",
      "-fPIC",
      "-O2",
      "-Wall",
      "-Werror",
      "-std=c11",
      "-I",
      include,
      "-o",
      partial,
      path.join(root, "native", source)
    ],
    { stdio: "inherit" }
  )
  fs.renameSync(partial, output)
}
