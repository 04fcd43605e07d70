import * as fs from "node:fs"
import * as path from "node:path"

const isExecutableFile = (file: string) => {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}

/** The first executable file named `command` in $PATH's directories (what a shell would run). */
export const findOnPath = (command: string): string | undefined =>
  (process.env.PATH ?? "")
    .split(path.delimiter)
    .filter((dir) => dir !== "")
    .map((dir) => path.join(dir, command))
    .find(isExecutableFile)

const found = new Map<string, boolean>()

/**
 * Whether `command` is on PATH, remembered per PATH (the optional helpers a pull runs, looked up
 * once per layer rather than once per process, so that a PATH set by a test or a service manager
 * counts).
 */
export const onPath = (command: string): boolean => {
  const key = `${command}\0${process.env.PATH ?? ""}`
  const known = found.get(key)
  if (known !== undefined) return known
  const result = findOnPath(command) !== undefined
  found.set(key, result)
  return result
}
