import * as os from "node:os"
import * as path from "node:path"
import { Context, Layer } from "effect"

/** Where banger keeps its database and artifacts; everything lives under one root. */
export interface StatePathsShape {
  readonly root: string
  readonly database: string
  readonly images: string
  readonly kernels: string
  readonly blobs: string
  readonly tmp: string
  readonly imageDir: (id: string) => string
  readonly stagingDir: (id: string) => string
  readonly kernelDir: (name: string) => string
  readonly blobPath: (digest: string) => string
}

export const makeStatePaths = (root: string): StatePathsShape => {
  const absolute = path.resolve(root)
  const images = path.join(absolute, "images")
  const kernels = path.join(absolute, "kernels")
  const blobs = path.join(absolute, "cache", "blobs", "sha256")
  return {
    root: absolute,
    database: path.join(absolute, "banger.db"),
    images,
    kernels,
    blobs,
    tmp: path.join(absolute, "tmp"),
    imageDir: (id) => path.join(images, id),
    stagingDir: (id) => path.join(images, `${id}.staging`),
    kernelDir: (name) => path.join(kernels, name),
    blobPath: (digest) => path.join(blobs, digest.replace(/^sha256:/, ""))
  }
}

/** `/var/lib/banger` for root, else `$XDG_DATA_HOME/banger` (`~/.local/share/banger`). */
export const defaultStateDir = (env: NodeJS.ProcessEnv = process.env): string => {
  if (env.BANGER_STATE_DIR) return env.BANGER_STATE_DIR
  if (process.getuid?.() === 0) return "/var/lib/banger"
  const dataHome = env.XDG_DATA_HOME || path.join(os.homedir(), ".local", "share")
  return path.join(dataHome, "banger")
}

export class StatePaths extends Context.Tag("banger/StatePaths")<StatePaths, StatePathsShape>() {
  static readonly layer = (root: string) => Layer.succeed(StatePaths, makeStatePaths(root))
}
