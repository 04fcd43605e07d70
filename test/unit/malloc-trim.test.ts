import * as fs from "node:fs"
import { setTimeout as sleep } from "node:timers/promises"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { describe, expect, it } from "@effect/vitest"
import { trimMalloc } from "../../src/layers/host/malloc-trim.js"

v8.setFlagsFromString("--expose-gc")
const gc = vm.runInNewContext("gc") as () => void

const rssBytes = () => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync("/proc/self/status", "utf8"))?.[1]) * 1024

describe("trimMalloc", () => {
  it("gives the free pages in the middle of malloc's heap back to the kernel", async () => {
    // 64 MiB in 64 KiB buffers (heap chunks, below glibc's mmap threshold), then one more that
    // stays: with the heap's top in use, freeing the others leaves them free inside the heap,
    // where free() alone never gives pages back.
    let buffers: Array<Buffer> | undefined = Array.from({ length: 1024 }, () => Buffer.alloc(64 * 1024, 1))
    const pin = Buffer.alloc(64 * 1024, 1)
    buffers = undefined
    // V8 frees ArrayBuffer backing stores on a background thread some time after a GC (under
    // CI's load, 200 ms was not enough): GC, wait and trim until the freed memory shows, 10 s at most.
    let released = 0
    let trimmed = false
    for (let attempt = 0; attempt < 50 && released <= 32 * 1024 * 1024; attempt++) {
      gc()
      gc()
      await sleep(200)
      const before = rssBytes()
      trimmed = trimMalloc() || trimmed
      released = Math.max(released, before - rssBytes())
    }
    expect(trimmed).toBe(true)
    expect(released).toBeGreaterThan(32 * 1024 * 1024)
    expect(pin[0]).toBe(1)
    expect(buffers).toBeUndefined()
  })
})
