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
 * is started from sets them itself. A pull mallocs and frees its data by the hundred MiB (network
 * chunks, stream buffers, 1 MiB write buffers): with glibc's defaults, chunks from 128 KiB up
 * could be fresh mmaps, and freed heap went back to the kernel once 128 KiB was free at its top,
 * so much of that data was written into newly faulted, zeroed pages. Allocations below 1 MiB now
 * come from the heap, which keeps up to 32 MiB free before trimming. Bench image, A/B on a tmpfs
 * state dir (cold / warm pull, daemon peak RSS): glibc's defaults 2.44 / 1.68 s; 8 MiB and
 * 128 MiB 2.30 / 1.57 s but 166-178 MiB; these 2.25-2.38 / 1.52-1.60 s, 135-152 MiB.
 *
 * Two arenas (`MALLOC_ARENA_MAX`), not one per thread-pool thread: each arena keeps its own free
 * memory, and the daemon's RSS 5 s after a 500k-file pull was 101-104 MiB with the default, 92-96
 * with two. What the heap holds free after an operation goes back with `malloc_trim` (see
 * collect-garbage.ts).
 *
 * (jemalloc, preloaded, gave memory back by itself, but on a VM where every fresh page is a fault
 * the host serves, its returning pages cost more than it saved: dev-80k 9.37 / 9.32 / 8.83 s and
 * 8.2-8.7 s of CPU against 9.21 / 8.34 / 8.35 s and 7.5-8.2 s with glibc and the trim.)
 */
export const DAEMON_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(1024 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(32 * 1024 * 1024),
  MALLOC_ARENA_MAX: "2"
}
