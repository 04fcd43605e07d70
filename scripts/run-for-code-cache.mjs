/**
 * `node scripts/run-for-code-cache.mjs OUT ARGS...`: runs dist/banger.cjs as bin/banger does, as
 * `banger ARGS...`, and writes V8's code cache for it to OUT when the process exits. V8 compiles
 * most functions only when first called, and a cache made before running (what bundle.mjs did)
 * holds only the few it compiles up front; made after a run, it also holds every function that
 * run needed, so a later process with the same role compiles almost nothing.
 */
import * as fs from "node:fs"
import Module, { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as vm from "node:vm"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const bundle = path.join(root, "dist", "banger.cjs")
const [out, ...args] = process.argv.slice(2)
if (out === undefined) throw new Error("usage: node scripts/run-for-code-cache.mjs OUT [banger arguments]")

// Compiled exactly as bin/banger compiles it (same source text), or V8 rejects the cache there.
const script = new vm.Script(Module.wrap(fs.readFileSync(bundle, "utf8")), { filename: bundle })
process.on("exit", () => fs.writeFileSync(out, script.createCachedData()))
process.argv = [process.execPath, path.join(root, "bin", "banger"), ...args]
const module = { exports: {} }
script
  .runInThisContext()
  .call(module.exports, module.exports, createRequire(bundle), module, bundle, path.dirname(bundle))
