import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { packageRootAbove } from "./package-root.js"

const loaded = new Map<string, unknown>()

/**
 * `dist/native/<name>.node` (built by `npm run build`, scripts/build-native.mjs, below the package
 * root), loaded once; throws saying how to build it when it is missing. `purpose` completes
 * "it ..." in that message.
 */
export const loadAddon = <A>(name: string, purpose: string): A => {
  const known = loaded.get(name)
  if (known !== undefined) return known as A
  // The bundle (dist/banger.cjs) defines import.meta.url from its own file (scripts/bundle.mjs).
  const self = fileURLToPath(import.meta.url)
  const root = packageRootAbove(self)
  const relative = path.join("dist", "native", `${name}.node`)
  const file = root === undefined ? undefined : path.join(root, relative)
  if (file === undefined || !fs.existsSync(file)) {
    throw new Error(`${file ?? relative} is missing: build it with npm run build (it ${purpose})`)
  }
  const addon = createRequire(self)(file) as A
  loaded.set(name, addon)
  return addon
}
