import * as fs from "node:fs"
import * as path from "node:path"

/** How far above the running script the package root may be (bin/, dist/, dist/cli/). */
const SEARCH_DEPTH = 4

const isBangerPackage = (dir: string) => {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")).name === "banger"
  } catch {
    return false
  }
}

/**
 * The `catalog.json` shipped in banger's package, read at run time so that editing it (or a newer
 * package) needs no rebuild: found from the running script (bin/banger, dist/banger.cjs or
 * dist/cli/main.js) up to the package root.
 */
export const builtinCatalogPath = (script: string | undefined = process.argv[1]): string => {
  let dir = path.dirname(script === undefined ? process.cwd() : fs.realpathSync(script))
  for (let depth = 0; depth < SEARCH_DEPTH; depth++) {
    if (isBangerPackage(dir)) return path.join(dir, "catalog.json")
    dir = path.dirname(dir)
  }
  return path.resolve(path.dirname(fs.realpathSync(script ?? ".")), "..", "catalog.json")
}

/** `--catalog` (made absolute), else `BANGER_CATALOG`, else the built-in one. */
export const catalogPath = (given: string | undefined, env: NodeJS.ProcessEnv = process.env): string =>
  given !== undefined
    ? path.resolve(given)
    : env.BANGER_CATALOG
      ? path.resolve(env.BANGER_CATALOG)
      : builtinCatalogPath()
