/**
 * `npm run build`'s second step: dist/cli/main.js and everything it imports, tree-shaken into one
 * file, dist/banger.mjs. Node 20 loads that in ~0.4 s where dist/'s ~1200 modules (effect's barrel
 * alone pulls in fast-check) take ~1.3 s, and it starts with ~40 MB less memory; a pull pays it
 * twice, once for the CLI and once for the daemon it starts. bin/banger runs the bundle only while
 * it is at least as new as dist/cli/main.js, so a later plain `tsc` build is never shadowed by it.
 */
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { build } from "esbuild"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

await build({
  entryPoints: [path.join(root, "dist", "cli", "main.js")],
  outfile: path.join(root, "dist", "banger.mjs"),
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  // Native addons (and the optional ones of msgpackr and ws) load from node_modules at run time.
  external: ["better-sqlite3", "msgpackr-extract", "bufferutil", "utf-8-validate"],
  // CommonJS dependencies call require(); an ES module has none of its own.
  banner: {
    js: "import { createRequire as __bangerCreateRequire } from 'node:module'; const require = __bangerCreateRequire(import.meta.url);"
  },
  minifyWhitespace: true,
  // Identifiers are left as they are (no keepNames: its __name() wrapper runs on every closure made).
  minifySyntax: true,
  logLevel: "warning"
})
