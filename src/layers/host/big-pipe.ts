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
  readonly teeSplice: (from: number, copyTo: number, moveTo: number) => void
}

const pipeAddon = () => loadAddon<PipeAddon>("pipe", "makes pipes with room for a decompressor's or hasher's output")

/**
 * A pipe of up to `capacity` bytes (native/pipe.c), both ends close-on-exec; with
 * `nonBlockingWrite`, a write to a full pipe fails with EAGAIN instead of blocking. Throws if the
 * addon is missing or the pipe cannot be made.
 */
export const openPipe = (capacity: number, nonBlockingWrite = false): PipeEnds =>
  pipeAddon().pipe(capacity, nonBlockingWrite)

/**
 * Everything that arrives in pipe `from`, copied into pipe `copyTo` and moved into pipe `moveTo`
 * by a native thread, with no byte copied (tee(2), splice(2); native/pipe.c). The thread works on
 * duplicates of the three: close ours as usual. It ends with `from`'s end, or when the reader of
 * `copyTo` or `moveTo` is gone. Throws if a descriptor is not a pipe or no thread can start.
 */
export const teeSplice = (from: number, copyTo: number, moveTo: number): void =>
  pipeAddon().teeSplice(from, copyTo, moveTo)

/** Closes one of our descriptors, if still open: for cleanup paths that must not throw. */
export const closeQuietly = (fd: number): void => {
  try {
    fs.closeSync(fd)
  } catch {
    // Already closed; nothing else holds it.
  }
}
