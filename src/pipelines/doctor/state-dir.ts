import * as path from "node:path"
import { Effect } from "effect"
import { HostProbe } from "../../layers/host/host-probe.js"
import { StatePaths } from "../../layers/state/state-paths.js"
import { fail, ok, warn } from "./result.js"

/** Below this, one pulled image and one VM disk (8 GiB by default, sparse) may no longer fit. */
export const LOW_SPACE_BYTES = 4 * 1024 ** 3

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`

const MOVE = "or use another state dir: --state-dir DIR or BANGER_STATE_DIR"

/**
 * The state dir, or (before its first use) the nearest existing directory above it, where it will
 * be created: doctor itself creates nothing.
 */
export const stateDirBase = Effect.gen(function* () {
  const host = yield* HostProbe
  const { root } = yield* StatePaths
  let dir = root
  while (true) {
    const info = yield* host.stat(dir)
    if (info !== undefined) return { root, dir, exists: dir === root, isDirectory: info.kind === "directory" }
    const parent = path.dirname(dir)
    if (parent === dir) return { root, dir, exists: false, isDirectory: false }
    dir = parent
  }
})

export const checkStateDir = Effect.gen(function* () {
  const host = yield* HostProbe
  const base = yield* stateDirBase
  if (!base.isDirectory) {
    return fail("state-dir", `${base.dir} is not a directory`, `remove ${base.dir}, ${MOVE}`)
  }
  const access = yield* host.writable(base.dir)
  if (base.exists) {
    return access._tag === "Granted"
      ? ok("state-dir", `${base.root} is writable`)
      : fail(
          "state-dir",
          `${base.root} is not writable (${access.code})`,
          `sudo chown -R $(id -u):$(id -g) ${base.root}, ${MOVE}`
        )
  }
  return access._tag === "Granted"
    ? ok("state-dir", `${base.root} does not exist yet; created on first use (${base.dir} is writable)`)
    : fail(
        "state-dir",
        `${base.root} cannot be created: ${base.dir} is not writable (${access.code})`,
        `sudo install -d -o $(id -u) -g $(id -g) ${base.root}, ${MOVE}`
      )
})

export const checkFreeSpace = Effect.gen(function* () {
  const host = yield* HostProbe
  const base = yield* stateDirBase
  return yield* host.space(base.dir).pipe(
    Effect.map((space) => {
      const detail = `${gib(space.availableBytes)} free of ${gib(space.totalBytes)} on ${base.dir}'s filesystem`
      return space.availableBytes < LOW_SPACE_BYTES
        ? warn(
            "free-space",
            `${detail}: under ${gib(LOW_SPACE_BYTES)}, an image and a VM disk may not fit`,
            `free some space (banger image delete NAME), ${MOVE}`
          )
        : ok("free-space", detail)
    }),
    Effect.catchAll((error) =>
      Effect.succeed(warn("free-space", `cannot tell: ${error.message}`, "see the state-dir check"))
    )
  )
})

/** With reflinks a VM's disk is a copy-on-write clone of its image: instant, and no space until written. */
export const checkReflink = Effect.gen(function* () {
  const host = yield* HostProbe
  const base = yield* stateDirBase
  if (!base.isDirectory || (yield* host.writable(base.dir))._tag === "Denied") {
    return warn("reflink", `cannot tell: nothing can be written in ${base.dir}`, "see the state-dir check")
  }
  return yield* host.reflinkSupported(base.dir).pipe(
    Effect.map((supported) =>
      supported
        ? ok("reflink", `${base.dir}'s filesystem reflinks: VM disks are instant copy-on-write clones`)
        : warn(
            "reflink",
            `${base.dir}'s filesystem cannot reflink: VM disks are full (sparse) copies of their image`,
            `put the state dir on XFS (mkfs.xfs -m reflink=1) or btrfs, ${MOVE}`
          )
    ),
    Effect.catchAll((error) =>
      Effect.succeed(warn("reflink", `cannot tell: ${error.message}`, "see the state-dir check"))
    )
  )
})
