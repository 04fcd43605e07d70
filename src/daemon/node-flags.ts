/**
 * The V8 flags the CLI starts its daemon with (see autostart.ts).
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
