import * as fs from "node:fs"
import * as path from "node:path"
import { packageRootAbove } from "../layers/host/package-root.js"

/**
 * The `catalog.json` shipped in banger's package, read at run time so that editing it (or a newer
 * package) needs no rebuild: found from the running script (bin/banger, dist/banger.cjs or
 * dist/cli/main.js) up to the package root.
 */
export const builtinCatalogPath = (script: string | undefined = process.argv[1]): string => {
  const root = packageRootAbove(script === undefined ? process.cwd() : fs.realpathSync(script))
  if (root !== undefined) return path.join(root, "catalog.json")
  return path.resolve(path.dirname(fs.realpathSync(script ?? ".")), "..", "catalog.json")
}

/** `--catalog` (made absolute), else `BANGER_CATALOG`, else the built-in one. */
export const catalogPath = (given: string | undefined, env: NodeJS.ProcessEnv = process.env): string =>
  given !== undefined
    ? path.resolve(given)
    : env.BANGER_CATALOG
      ? path.resolve(env.BANGER_CATALOG)
      : builtinCatalogPath()
