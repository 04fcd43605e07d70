import { Effect } from "effect"
import { trimMalloc } from "../layers/host/malloc-trim.js"

/**
 * A full GC right after an operation ends, when node exposes `gc` (the daemon the CLI starts runs
 * with --expose-gc, see node-flags.ts). A pull leaves ~20 MiB of dead tree and plan in the old
 * generation, which V8 otherwise keeps until its next full GC: in the middle of the next pull
 * (back-to-back pulls of the bench image peaked at 155-164 MiB instead of 131-145 MiB) or, in a
 * daemon left idle, for as long as nothing allocates. It takes 30-60 ms, so it waits a moment:
 * the final status reaches the client over several hops, and a GC scheduled for the next turn of
 * the event loop (setImmediate) ran before them and kept `banger image pull` waiting (bench image:
 * 98-130 ms from the last stage to the CLI's exit, 61-89 ms with this delay).
 */
export const GC_DELAY_MS = 100

/** V8's full GC, when node exposes it (`--expose-gc`: the daemon). */
const exposedGc = (): (() => void) | undefined => {
  const gc = (globalThis as { readonly gc?: unknown }).gc
  return typeof gc === "function" ? (gc as () => void) : undefined
}

/**
 * Two full GCs, not one: after one, V8 had freed the pull's tree but kept most of the pages it was
 * on (500k-file image: ~42 MiB of 256 KiB heap pages for ~27 MiB of live objects, five seconds
 * after); the second, with nothing left to free, compacts and gives the empty pages back (~27 MiB
 * of pages; RSS 5 s after 144 -> 132 MiB with glibc's malloc).
 */
const collectAndCompact = (gc: () => void) => {
  gc()
  gc()
}

/**
 * Then malloc's free pages go back too: the GCs free the pull's ArrayBuffers into glibc's heap,
 * which keeps them (500k-file image: RSS 5 s after 130 MiB without the trim, 92-96 with it).
 * Without the addon (a build that skipped it) the memory merely stays.
 */
const collectCompactAndTrim = (gc: () => void) => {
  collectAndCompact(gc)
  try {
    trimMalloc()
  } catch {
    // No addon: nothing to give back with.
  }
}

export const collectGarbageSoon: Effect.Effect<void> = Effect.sync(() => {
  const gc = exposedGc()
  if (gc !== undefined) setTimeout(() => collectCompactAndTrim(gc), GC_DELAY_MS).unref()
})

/**
 * Both GCs now where there is a `gc`, else nothing: for work that knows its peak is next. Before
 * the ext4 write of a 500k-file tree, the second one (~60 ms) gives back ~16 MiB of heap pages
 * the first left committed (heap at the peak 86 -> 70 MiB, peak RSS 201 -> 190 MiB, traced).
 */
export const collectGarbageNow = (): void => {
  const gc = exposedGc()
  if (gc !== undefined) collectAndCompact(gc)
}
