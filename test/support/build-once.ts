/**
 * vitest global setup: compiles src/ to dist/ once per run, so tests that spawn ./bin/banger run
 * the code under test rather than whatever an earlier build left.
 */
import { execFileSync } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export default function setup() {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
  execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], {
    cwd: root,
    stdio: "inherit"
  })
}
