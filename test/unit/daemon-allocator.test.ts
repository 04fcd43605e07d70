import { describe, expect, it } from "@effect/vitest"
import { DAEMON_MALLOC_ENV, daemonAllocatorEnv, forgetPreload, JEMALLOC_PATHS } from "../../src/daemon/node-flags.js"

const installed = (path: string) => path === JEMALLOC_PATHS[0]

describe("the daemon's allocator", () => {
  it("preloads jemalloc where it is installed, and glibc's settings otherwise or when told", () => {
    expect(daemonAllocatorEnv({}, installed)).toEqual({
      LD_PRELOAD: JEMALLOC_PATHS[0],
      MALLOC_CONF: "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0",
      BANGER_DAEMON_PRELOAD: JEMALLOC_PATHS[0]
    })
    expect(daemonAllocatorEnv({ MALLOC_CONF: "narenas:1" }, installed).MALLOC_CONF).toBe("narenas:1")
    expect(daemonAllocatorEnv({}, () => false)).toEqual(DAEMON_MALLOC_ENV)
    expect(daemonAllocatorEnv({ LD_PRELOAD: "/x.so" }, installed)).toEqual(DAEMON_MALLOC_ENV)
    expect(daemonAllocatorEnv({ BANGER_DAEMON_MALLOC: "glibc" }, installed)).toEqual(DAEMON_MALLOC_ENV)
  })

  it("takes the preload out of the daemon's environment, and leaves one it did not add", () => {
    const env: NodeJS.ProcessEnv = { ...daemonAllocatorEnv({}, installed), PATH: "/bin" }
    forgetPreload(env)
    expect(env).toEqual({ PATH: "/bin" })
    const theirs: NodeJS.ProcessEnv = { LD_PRELOAD: "/x.so", MALLOC_CONF: "a:1", BANGER_DAEMON_PRELOAD: "/y.so" }
    forgetPreload(theirs)
    expect(theirs).toEqual({ LD_PRELOAD: "/x.so", MALLOC_CONF: "a:1" })
  })
})
