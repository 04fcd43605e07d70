/**
 * native/pipe.c: a pipe of the capacity asked for (within pipe-max-size), both ends close-on-exec,
 * carrying bytes like any pipe, its write end non-blocking when asked; and its loader's message
 * when the addon is missing.
 */
import * as fs from "node:fs"
import { describe, expect, it } from "vitest"
import { loadAddon } from "../../src/layers/host/native-addon.js"

interface PipeAddon {
  readonly pipe: (
    capacity: number,
    nonBlockingWrite?: boolean
  ) => { readonly read: number; readonly write: number; readonly capacity: number }
}

const MiB = 1024 * 1024

/** The open flags of one of our descriptors, as /proc/self/fdinfo shows them (octal). */
const flagsOf = (fd: number) =>
  Number.parseInt(/flags:\s*(\d+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))![1]!, 8)

const O_CLOEXEC = 0o2000000
const O_NONBLOCK = 0o4000

describe("the pipe addon", () => {
  it("makes a close-on-exec pipe of 1 MiB that holds 1 MiB unread", () => {
    const { pipe } = loadAddon<PipeAddon>("pipe", "makes pipes")
    const ends = pipe(MiB)
    try {
      expect(ends.capacity).toBe(Math.min(MiB, Number(fs.readFileSync("/proc/sys/fs/pipe-max-size", "utf8"))))
      expect(flagsOf(ends.read) & O_CLOEXEC).toBe(O_CLOEXEC)
      expect(flagsOf(ends.write) & O_CLOEXEC).toBe(O_CLOEXEC)
      // A default pipe (64 KiB) would block this write: the test would hang, not pass.
      const bytes = Buffer.alloc(ends.capacity, 7)
      expect(fs.writeSync(ends.write, bytes)).toBe(ends.capacity)
      const back = Buffer.alloc(ends.capacity)
      let read = 0
      while (read < back.length) read += fs.readSync(ends.read, back, read, back.length - read, null)
      expect(back.equals(bytes)).toBe(true)
    } finally {
      fs.closeSync(ends.read)
      fs.closeSync(ends.write)
    }
  })

  it("with a non-blocking write end, a full pipe refuses more with EAGAIN instead of blocking", () => {
    const { pipe } = loadAddon<PipeAddon>("pipe", "makes pipes")
    const ends = pipe(MiB, true)
    try {
      expect(flagsOf(ends.write) & O_NONBLOCK).toBe(O_NONBLOCK)
      expect(flagsOf(ends.read) & O_NONBLOCK).toBe(0)
      const bytes = Buffer.alloc(ends.capacity * 2, 1)
      expect(fs.writeSync(ends.write, bytes)).toBe(ends.capacity)
      expect(() => fs.writeSync(ends.write, bytes)).toThrow(/EAGAIN/)
    } finally {
      fs.closeSync(ends.read)
      fs.closeSync(ends.write)
    }
  })

  it("refuses a capacity that is not a positive number", () => {
    const { pipe } = loadAddon<PipeAddon>("pipe", "makes pipes")
    expect(() => pipe(0)).toThrow(/capacity must be a positive number/)
  })

  it("names the missing addon and how to build it", () => {
    expect(() => loadAddon("no-such-addon", "does nothing")).toThrow(
      /dist\/native\/no-such-addon\.node is missing: build it with npm run build \(it does nothing\)/
    )
  })
})
