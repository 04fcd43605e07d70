import { loadAddon } from "./native-addon.js"

interface MallocTrimAddon {
  readonly trim: () => boolean
}

/**
 * glibc's `malloc_trim(0)` (native/malloc-trim.c): every whole free page of malloc's heaps back to
 * the kernel. True if anything was given back.
 */
export const trimMalloc = (): boolean =>
  loadAddon<MallocTrimAddon>("malloc-trim", "gives malloc's free pages back to the kernel").trim()
