import * as fs from "node:fs"
import { createRequire } from "node:module"
import type * as net from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { Peer } from "../domain/peer.js"
import { packageRootAbove } from "../layers/host/package-root.js"

interface Addon {
  readonly peerCredentials: (fd: number) => Peer
}

/** Where `npm run build` puts the addon (scripts/build-native.mjs), below the package root. */
const ADDON = path.join("dist", "native", "peercred.node")

let loaded: Addon | undefined

/** The addon, loaded once; throws saying how to build it when it is missing. */
export const loadPeerCredentials = (): Addon => {
  if (loaded !== undefined) return loaded
  // The bundle (dist/banger.cjs) defines import.meta.url from its own file (scripts/bundle.mjs).
  const self = fileURLToPath(import.meta.url)
  const root = packageRootAbove(self)
  const file = root === undefined ? undefined : path.join(root, ADDON)
  if (file === undefined || !fs.existsSync(file)) {
    throw new Error(`${file ?? ADDON} is missing: build it with npm run build (it reads socket peers' credentials)`)
  }
  loaded = createRequire(self)(file) as Addon
  return loaded
}

/** The kernel's record of who connected on `socket` (a Unix socket accepted by the daemon). */
export const peerOfSocket = (socket: net.Socket): Peer => {
  const fd = (socket as unknown as { readonly _handle?: { readonly fd?: number } })._handle?.fd
  if (typeof fd !== "number" || fd < 0) throw new Error("the accepted socket has no file descriptor")
  const { uid, gid, pid, groups } = loadPeerCredentials().peerCredentials(fd)
  return { uid, gid, pid, groups }
}
