import * as fs from "node:fs"
import * as path from "node:path"

const found = new Map<string, boolean>()

/**
 * Whether an executable `command` is in one of $PATH's directories, remembered per PATH (the
 * optional helpers a pull runs, looked up once per layer rather than once per process, so that a
 * PATH set by a test or a service manager counts).
 */
export const onPath = (command: string): boolean => {
  const key = `${command}\0${process.env.PATH ?? ""}`
  const known = found.get(key)
  if (known !== undefined) return known
  const result = (process.env.PATH ?? "").split(path.delimiter).some((dir) => {
    if (dir === "") return false
    try {
      fs.accessSync(path.join(dir, command), fs.constants.X_OK)
      return true
    } catch {
      return false
    }
  })
  found.set(key, result)
  return result
}
