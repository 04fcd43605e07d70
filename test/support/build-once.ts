/**
 * vitest global setup: `npm run build` once per run (the peercred addon, tsc, then the bundle bin/banger loads), so
 * tests that spawn ./bin/banger run the code under test, the way users run it.
 */
import { execFileSync } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export default function setup() {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
  execFileSync(process.execPath, [path.join(root, "scripts/build-native.mjs")], { cwd: root, stdio: "inherit" })
  execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], {
    cwd: root,
    stdio: "inherit"
  })
  execFileSync(process.execPath, [path.join(root, "scripts/bundle.mjs")], { cwd: root, stdio: "inherit" })
}
