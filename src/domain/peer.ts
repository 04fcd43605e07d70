/**
 * Who is at the other end of the daemon's socket, as the kernel recorded it when the client
 * connected (SO_PEERCRED, SO_PEERGROUPS): never anything the client says about itself.
 */
export interface Peer {
  readonly uid: number
  readonly gid: number
  /** The connecting process (it may have exited since). */
  readonly pid: number
  /** Supplementary groups. */
  readonly groups: ReadonlyArray<number>
}

/**
 * The request header the daemon's socket protocol stamps on every request with its connection's
 * peer. Whatever a client sends under this name is dropped first, so only the daemon writes it.
 */
export const PEER_HEADER = "x-banger-peer"

const isId = (value: number) => Number.isSafeInteger(value) && value >= 0 && value <= 0xffffffff

/** `uid:gid:pid:g1,g2`. */
export const encodePeer = (peer: Peer): string => `${peer.uid}:${peer.gid}:${peer.pid}:${peer.groups.join(",")}`

export const decodePeer = (value: string | undefined): Peer | undefined => {
  const match = value === undefined ? null : /^(\d+):(\d+):(\d+):((?:\d+(?:,\d+)*)?)$/.exec(value)
  if (match === null) return undefined
  const [uid, gid, pid] = [Number(match[1]), Number(match[2]), Number(match[3])]
  const groups = match[4] === "" ? [] : match[4]!.split(",").map(Number)
  if (![uid, gid, pid, ...groups].every(isId)) return undefined
  return { uid, gid, pid, groups }
}

/** How a daemon reads a client's paths: as it is, as the client (a child with its ids), or not at all. */
export type PathAccess =
  | { readonly _tag: "Direct" }
  | { readonly _tag: "AsPeer"; readonly peer: Peer }
  | { readonly _tag: "Refused"; readonly reason: string }

/**
 * The daemon's own user, and root (who could read anything anyway), are served with the daemon's
 * rights. Anyone else is served with their own: a root daemon reads as them in a child process
 * with their ids; a daemon of another user cannot take on someone else's ids, so it refuses.
 * A request with no peer (not from the socket) names no host paths at all.
 */
export const pathAccess = (peer: Peer | undefined, daemonUid: number): PathAccess => {
  if (peer === undefined) return { _tag: "Refused", reason: "host paths are accepted only over the daemon's socket" }
  if (peer.uid === daemonUid || peer.uid === 0) return { _tag: "Direct" }
  if (daemonUid === 0) return { _tag: "AsPeer", peer }
  return {
    _tag: "Refused",
    reason: `the daemon runs as uid ${daemonUid} and cannot read files with another user's rights (run it as root, or as that user)`
  }
}
