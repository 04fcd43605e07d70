import * as fs from "node:fs"
import * as path from "node:path"

/** How far above a module or script the package root may be (bin/, dist/, dist/cli/, src/daemon/). */
const SEARCH_DEPTH = 4

const isBangerPackage = (dir: string) => {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")).name === "banger"
  } catch {
    return false
  }
}

/** banger's package root: the nearest directory above `file` whose package.json names banger. */
export const packageRootAbove = (file: string): string | undefined => {
  let dir = path.dirname(file)
  for (let depth = 0; depth < SEARCH_DEPTH; depth++) {
    if (isBangerPackage(dir)) return dir
    dir = path.dirname(dir)
  }
  return undefined
}
