import * as fs from "node:fs"

/**
 * How the CLI starts its daemon (spawn.ts): V8 flags, and glibc malloc settings in its environment.
 *
 * The V8 flags:
 *
 * `--max-semi-space-size=2`: a young generation of 2 × 2 MiB instead of the up to 2 × 16 MiB V8
 * grows it to in the first pull. A pull's garbage is short-lived chunks; a small young generation
 * collects it sooner and takes less memory itself. Bench image, `--fs ram`, 4 runs: daemon peak
 * 153-168 / 158-178 MiB (cold / warm) instead of 194-196 / 196-199 MiB, no slower (1 MiB: about
 * the same as 2; 4 MiB: 171-176 / 172-182 MiB).
 *
 * `--expose-gc`: for the full GC after each operation (collect-garbage.ts).
 *
 * V8 takes a code cache only from a process with the same flags, so the build makes one for these
 * too (scripts/bundle.mjs), and bin/banger picks the cache named after its own flags.
 */
export const DAEMON_NODE_FLAGS: ReadonlyArray<string> = ["--max-semi-space-size=2", "--expose-gc"]

/**
 * glibc malloc settings (mallopt(3)'s environment variables), unless the environment the daemon
 * is started from sets them itself. A pull mallocs and frees its data by the hundred MiB (zlib's
 * 256 KiB output chunks, stream buffers, 1 MiB write buffers): with glibc's defaults, chunks from
 * 128 KiB up could be fresh mmaps, and freed heap went back to the kernel once 128 KiB was free at
 * its top, so much of that data was written into newly faulted, zeroed pages. Allocations below
 * 1 MiB now come from the heap, which keeps up to 32 MiB free before trimming. Bench image, A/B
 * on a tmpfs state dir (cold / warm pull, daemon peak RSS): glibc's defaults 2.44 / 1.68 s; 8 MiB
 * and 128 MiB 2.30 / 1.57 s but 166-178 MiB; these 2.25-2.38 / 1.52-1.60 s, 135-152 MiB; a
 * trim threshold of 8 MiB 2.34 / 1.58 s, 132-139 MiB.
 */
export const DAEMON_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(1024 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(32 * 1024 * 1024)
}

/** Where Debian's libjemalloc2 puts the library. */
export const JEMALLOC_PATHS: ReadonlyArray<string> = [
  "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
  "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
  "/usr/lib/libjemalloc.so.2",
  "/usr/lib64/libjemalloc.so.2"
]

/**
 * jemalloc instead of glibc's malloc, when it is installed and the environment preloads nothing
 * else. A big pull leaves glibc's heap fragmented: free memory it cannot trim stayed in the
 * daemon (500k-file image: [heap] ~30-35 MiB of RSS five seconds after the pull, whatever the
 * MALLOC_* thresholds), while jemalloc gives unused pages back within about a second
 * (`dirty_decay_ms`, on its own background thread). The daemon takes it out of its environment
 * again at start (`forgetPreload`), so the tools it runs keep their usual malloc.
 */
export const daemonAllocatorEnv = (
  env: NodeJS.ProcessEnv,
  exists: (path: string) => boolean = fs.existsSync
): Readonly<Record<string, string>> => {
  if (env.LD_PRELOAD !== undefined || env.BANGER_DAEMON_MALLOC === "glibc") return DAEMON_MALLOC_ENV
  const jemalloc = JEMALLOC_PATHS.find(exists)
  if (jemalloc === undefined) return DAEMON_MALLOC_ENV
  return {
    LD_PRELOAD: jemalloc,
    MALLOC_CONF: env.MALLOC_CONF ?? "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0",
    BANGER_DAEMON_PRELOAD: jemalloc
  }
}

/** Drops the preload `daemonAllocatorEnv` added, so that the daemon's children do not inherit it. */
export const forgetPreload = (env: NodeJS.ProcessEnv = process.env) => {
  const preload = env.BANGER_DAEMON_PRELOAD
  if (preload === undefined) return
  if (env.LD_PRELOAD === preload) {
    delete env.LD_PRELOAD
    delete env.MALLOC_CONF
  }
  delete env.BANGER_DAEMON_PRELOAD
}
