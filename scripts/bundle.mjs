/**
 * `npm run build`'s second step: dist/cli/main.js and everything it imports, tree-shaken into one
 * CommonJS file, dist/banger.cjs, plus V8 code caches for it. Node 20 loads dist/'s ~1200 ES
 * modules (effect's barrel alone pulls in fast-check) in ~1.3 s; the bundle loads in ~0.36 s, and
 * ~0.27 s with ~15 MB less memory when V8 can take its compiled code from a cache (Node 20 has no
 * compile cache of its own for modules). A pull pays the start twice: the CLI and the daemon it
 * starts. bin/banger runs the bundle only while it is at least as new as dist/cli/main.js, so a
 * later plain `tsc` build is never shadowed by it.
 *
 * V8 takes a code cache only from a process with the same flags, and the CLI starts its daemon with
 * flags of its own (src/daemon/node-flags.ts), so there are two caches, named after the flags as
 * bin/banger looks for them: dist/banger.cjs.cache for a plain node, the CLI, and
 * dist/banger.cjs.<flags>.cache for the daemon's. Each is made by a run of that role
 * (makeCodeCaches), so that it holds the functions the role calls, not only the few V8 compiles
 * before running.
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { build } from "esbuild"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const bundle = path.join(root, "dist", "banger.cjs")

/** The cache of a process started with `flags`: `banger.cjs.cache`, `banger.cjs.max-semi-space-size=2.expose-gc.cache`. */
const cacheFile = (flags) => `${bundle}${flags.map((flag) => `.${flag.replace(/^-+/, "")}`).join("")}.cache`

await build({
  entryPoints: [path.join(root, "dist", "cli", "main.js")],
  outfile: bundle,
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  // Native addons (and the optional ones of msgpackr and ws) load from node_modules at run time.
  external: ["better-sqlite3", "msgpackr-extract", "bufferutil", "utf-8-validate"],
  // import.meta.url in CommonJS: the bundle's own file (peer-credentials.ts finds the addon from it).
  define: { "import.meta.url": "__bangerModuleUrl" },
  banner: { js: 'var __bangerModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
  minifyWhitespace: true,
  // Identifiers are left as they are (no keepNames: its __name() wrapper runs on every closure made).
  minifySyntax: true,
  logLevel: "warning"
})

// Caches of earlier builds (for other flags perhaps): rejected anyway, and gone, a failed run below
// cannot leave one behind.
for (const name of fs.readdirSync(path.dirname(bundle))) {
  if (name.startsWith("banger.cjs.") && name.endsWith(".cache")) fs.rmSync(path.join(path.dirname(bundle), name))
}
// The ES module bundle of earlier builds.
fs.rmSync(path.join(root, "dist", "banger.mjs"), { force: true })
const { DAEMON_NODE_FLAGS } = await import("../dist/daemon/node-flags.js")
await makeCodeCaches(DAEMON_NODE_FLAGS)

/**
 * The two code caches, each written by run-for-code-cache.mjs as its process exits: a daemon under
 * `daemonFlags`, on a scratch state dir, serving one `banger image list` (its cache is written as
 * it stops), and that CLI command, under no flags.
 */
async function makeCodeCaches(daemonFlags) {
  const runner = path.join(root, "scripts", "run-for-code-cache.mjs")
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "banger-code-cache-"))
  const stateDir = path.join(scratch, "state")
  const socket = path.join(stateDir, "banger.sock")
  // Only the flags given here: NODE_OPTIONS would change what V8 accepts later.
  const env = { ...process.env, BANGER_NO_AUTOSTART: "1", NODE_OPTIONS: "" }
  const daemon = spawn(
    process.execPath,
    [...daemonFlags, runner, cacheFile(daemonFlags), "--state-dir", stateDir, "daemon", "--socket", socket],
    { env, stdio: ["ignore", "ignore", "pipe"] }
  )
  let daemonLog = ""
  daemon.stderr.on("data", (chunk) => (daemonLog += chunk))
  const exited = new Promise((resolve) => daemon.once("exit", (code, signal) => resolve(code ?? signal)))
  try {
    const deadline = Date.now() + 60_000
    while (!(await answers(socket))) {
      if (daemon.exitCode !== null || Date.now() > deadline) {
        throw new Error(`the code-cache daemon did not start:\n${daemonLog}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const cli = spawnSync(
      process.execPath,
      [runner, cacheFile([]), "--state-dir", stateDir, "image", "list", "--json"],
      { env, encoding: "utf8" }
    )
    if (cli.status !== 0) throw new Error(`banger image list failed while making the code cache:\n${cli.stderr}`)
    daemon.kill("SIGTERM")
    const code = await exited
    if (code !== 0) throw new Error(`the code-cache daemon exited ${code}:\n${daemonLog}`)
  } finally {
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill("SIGKILL")
    fs.rmSync(scratch, { recursive: true, force: true })
  }
  for (const file of [cacheFile([]), cacheFile(daemonFlags)]) {
    if (!fs.existsSync(file)) throw new Error(`no code cache was written to ${file}`)
  }
}

function answers(socketPath) {
  return new Promise((resolve) => {
    const connection = net.connect(socketPath)
    connection.once("connect", () => {
      connection.destroy()
      resolve(true)
    })
    connection.once("error", () => resolve(false))
  })
}
