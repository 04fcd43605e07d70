/**
 * `npm run build`'s second step: dist/cli/main.js and everything it imports, tree-shaken into one
 * CommonJS file, dist/banger.cjs, plus a V8 code cache for it, dist/banger.cjs.cache. Node 20 loads
 * dist/'s ~1200 ES modules (effect's barrel alone pulls in fast-check) in ~1.3 s; the bundle loads
 * in ~0.36 s, and ~0.27 s with ~15 MB less memory when V8 can take its compiled code from the cache
 * (Node 20 has no compile cache of its own for modules). A pull pays the start twice: the CLI and
 * the daemon it starts. bin/banger runs the bundle only while it is at least as new as
 * dist/cli/main.js, so a later plain `tsc` build is never shadowed by it.
 *
 * V8 takes a code cache only from a process with the same flags, and the CLI starts its daemon with
 * flags of its own (src/daemon/node-flags.ts), so there is a second cache, made by this script
 * rerun under those flags (`--code-cache`), named after them as bin/banger looks for it.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import Module from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as vm from "node:vm"
import { build } from "esbuild"

const script = fileURLToPath(import.meta.url)
const root = path.resolve(path.dirname(script), "..")
const bundle = path.join(root, "dist", "banger.cjs")

/** The cache of a process started with `flags`: `banger.cjs.cache`, `banger.cjs.max-semi-space-size=2.cache`. */
const cacheFile = (flags) => `${bundle}${flags.map((flag) => `.${flag.replace(/^-+/, "")}`).join("")}.cache`

/** Compiled the way bin/banger compiles it, so that V8 accepts the cache (same source, node, flags). */
const writeCache = () => {
  const compiled = new vm.Script(Module.wrap(fs.readFileSync(bundle, "utf8")), { filename: bundle })
  fs.writeFileSync(cacheFile(process.execArgv), compiled.createCachedData())
}

if (process.argv[2] === "--code-cache") {
  writeCache()
  process.exit(0)
}

await build({
  entryPoints: [path.join(root, "dist", "cli", "main.js")],
  outfile: bundle,
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  // Native addons (and the optional ones of msgpackr and ws) load from node_modules at run time.
  external: ["better-sqlite3", "msgpackr-extract", "bufferutil", "utf-8-validate"],
  minifyWhitespace: true,
  // Identifiers are left as they are (no keepNames: its __name() wrapper runs on every closure made).
  minifySyntax: true,
  logLevel: "warning"
})

// Caches of earlier builds, for other flags perhaps.
for (const name of fs.readdirSync(path.dirname(bundle))) {
  if (name.startsWith("banger.cjs.") && name.endsWith(".cache")) fs.rmSync(path.join(path.dirname(bundle), name))
}
writeCache()
const { DAEMON_NODE_FLAGS } = await import("../dist/daemon/node-flags.js")
const daemon = spawnSync(process.execPath, [...DAEMON_NODE_FLAGS, script, "--code-cache"], { stdio: "inherit" })
if (daemon.status !== 0) throw new Error(`making the daemon's code cache failed (${daemon.status ?? daemon.signal})`)
// The ES module bundle of earlier builds.
fs.rmSync(path.join(root, "dist", "banger.mjs"), { force: true })
