import type * as net from "node:net"
import type { Peer } from "../domain/peer.js"
import { loadAddon } from "../layers/host/native-addon.js"

interface Addon {
  readonly peerCredentials: (fd: number) => Peer
}

/** The addon (native/peercred.c); throws saying how to build it when it is missing. */
export const loadPeerCredentials = (): Addon => loadAddon<Addon>("peercred", "reads socket peers' credentials")

/** The kernel's record of who connected on `socket` (a Unix socket accepted by the daemon). */
export const peerOfSocket = (socket: net.Socket): Peer => {
  const fd = (socket as unknown as { readonly _handle?: { readonly fd?: number } })._handle?.fd
  if (typeof fd !== "number" || fd < 0) throw new Error("the accepted socket has no file descriptor")
  const { uid, gid, pid, groups } = loadPeerCredentials().peerCredentials(fd)
  return { uid, gid, pid, groups }
}
