/**
 * The image draft writing file contents behind (on the thread pool) while the caller goes on: the
 * bytes land in order, a freed block handed out again ends up with its last contents, the queue
 * asks the caller to wait when it is full, and a failed write fails the next call and `finish`.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { ContentFailure } from "../../src/domain/content.js"
import { ImageDraftFile } from "../../src/layers/ext4/image/draft.js"
import type { FileBlocks } from "../../src/layers/ext4/image/draft-contents.js"
import { BLOCK_SIZE } from "../../src/layers/ext4/image/format.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-write-behind-"))
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))

const MIB = 1024 * 1024
const filled = (byte: number, length: number) => Buffer.alloc(length, byte)

const writeFile = (draft: ImageDraftFile, byte: number, size: number) => {
  const writer = draft.contents.begin(size)
  // In pieces smaller than the 1 MiB buffer, as a layer's data arrives.
  for (let done = 0; done < size; done += 300_000) writer.write(filled(byte, Math.min(300_000, size - done)))
  return writer.finish() as FileBlocks
}

const bytesOf = (file: string, content: FileBlocks) => {
  const fd = fs.openSync(file, "r")
  try {
    return Buffer.concat(
      content.runs.map((run) => {
        const bytes = Buffer.alloc(run.length * BLOCK_SIZE)
        fs.readSync(fd, bytes, 0, bytes.length, run.start * BLOCK_SIZE)
        return bytes
      })
    ).subarray(0, content.size)
  } finally {
    fs.closeSync(fd)
  }
}

describe("image draft: writing behind", () => {
  it("keeps the order of writes to reused blocks, and asks to wait when its queue is full", async () => {
    const file = path.join(work, "draft.img")
    const draft = ImageDraftFile.open(file)
    const behind = draft.contents.writeBehind
    behind.start()
    const first = writeFile(draft, 0x41, 3 * MIB)
    // Freed and handed out again while the first file's bytes may still wait in the queue.
    draft.contents.release(first)
    const second = writeFile(draft, 0x42, 3 * MIB)
    expect(second.runs[0]!.start).toBe(first.runs[0]!.start)
    const third = writeFile(draft, 0x43, 2 * MIB + 123)
    const wait = behind.ready()
    expect(wait).toBeInstanceOf(Promise)
    await wait
    expect(behind.ready()).toBeUndefined()
    await behind.finish()
    await draft.contents.sync()
    expect(bytesOf(file, second).equals(filled(0x42, 3 * MIB))).toBe(true)
    expect(bytesOf(file, third).equals(filled(0x43, 2 * MIB + 123))).toBe(true)
    await draft.close()
  })

  it("fails the next write and finish with what a background write failed with", async () => {
    // /dev/full takes the open and refuses every write with ENOSPC.
    const draft = ImageDraftFile.open("/dev/full")
    const behind = draft.contents.writeBehind
    behind.start()
    writeFile(draft, 0x41, 2 * MIB)
    const failure = await behind.finish().then(
      () => undefined,
      (error: unknown) => error
    )
    expect(failure).toBeInstanceOf(ContentFailure)
    expect((failure as ContentFailure).error.reason).toMatch(/^the filesystem is full/)
    expect(() => draft.contents.begin(10).write(filled(1, 10))).not.toThrow()
    expect(() => draft.contents.flush()).toThrow(ContentFailure)
    await draft.close()
  })
})
