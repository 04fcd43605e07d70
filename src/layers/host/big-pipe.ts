import * as fs from "node:fs"
import { loadAddon } from "./native-addon.js"

export interface PipeEnds {
  readonly read: number
  readonly write: number
  /** What the kernel granted: the capacity asked for, or its default where that was refused. */
  readonly capacity: number
}

interface PipeAddon {
  readonly pipe: (capacity: number, nonBlockingWrite: boolean) => PipeEnds
}

/**
 * A pipe of up to `capacity` bytes (native/pipe.c), both ends close-on-exec; with
 * `nonBlockingWrite`, a write to a full pipe fails with EAGAIN instead of blocking. Throws if the
 * addon is missing or the pipe cannot be made.
 */
export const openPipe = (capacity: number, nonBlockingWrite = false): PipeEnds =>
  loadAddon<PipeAddon>("pipe", "makes pipes with room for a decompressor's or hasher's output").pipe(
    capacity,
    nonBlockingWrite
  )

/** Closes one of our descriptors, if still open: for cleanup paths that must not throw. */
export const closeQuietly = (fd: number): void => {
  try {
    fs.closeSync(fd)
  } catch {
    // Already closed; nothing else holds it.
  }
}
