import { Effect } from "effect"

/**
 * A full GC right after an operation ends, when node exposes `gc` (the daemon the CLI starts runs
 * with --expose-gc, see node-flags.ts). A pull leaves ~20 MiB of dead tree and plan in the old
 * generation, which V8 otherwise keeps until its next full GC: in the middle of the next pull
 * (back-to-back pulls of the bench image peaked at 155-164 MiB instead of 131-145 MiB) or, in a
 * daemon left idle, for as long as nothing allocates. Scheduled, not run inline, so the final
 * status goes out first; it takes ~10-30 ms.
 */
export const collectGarbageSoon: Effect.Effect<void> = Effect.sync(() => {
  const gc = (globalThis as { readonly gc?: () => void }).gc
  if (typeof gc === "function") setImmediate(gc)
})
