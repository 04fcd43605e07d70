import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { hasPvhEntry, noteSegments } from "../../src/domain/elf-notes.js"
import { inspectKernelFile } from "../../src/pipelines/kernel/inspect-kernel.js"

/** A minimal ELF64 with one PT_NOTE segment at `noteOffset` holding `notes`. */
const elfWithNotes = (notes: Buffer, noteOffset = 0x1000) => {
  const file = Buffer.alloc(noteOffset + notes.length)
  file.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0)
  file.writeBigUInt64LE(64n, 0x20) // e_phoff
  file.writeUInt16LE(56, 0x36) // e_phentsize
  file.writeUInt16LE(1, 0x38) // e_phnum
  file.writeUInt32LE(4, 64) // PT_NOTE
  file.writeBigUInt64LE(BigInt(noteOffset), 64 + 8)
  file.writeBigUInt64LE(BigInt(notes.length), 64 + 32)
  notes.copy(file, noteOffset)
  return file
}

const note = (name: string, type: number, desc: Buffer) => {
  const nameBytes = Buffer.from(`${name}\0`)
  const pad = (bytes: Buffer) => Buffer.concat([bytes, Buffer.alloc((4 - (bytes.length % 4)) % 4)])
  const head = Buffer.alloc(12)
  head.writeUInt32LE(nameBytes.length, 0)
  head.writeUInt32LE(desc.length, 4)
  head.writeUInt32LE(type, 8)
  return Buffer.concat([head, pad(nameBytes), pad(desc)])
}

const gnuBuildId = note("GNU", 3, Buffer.alloc(20, 1))
const xenPvh = note("Xen", 18, Buffer.from([0, 0, 0, 1]))
const xenOther = note("Xen", 5, Buffer.from("xen-3.0\0"))

describe("PVH entry note (what QEMU's -kernel needs of an ELF vmlinux)", () => {
  it("finds the note segments and the Xen PHYS32_ENTRY note among others", () => {
    const withPvh = elfWithNotes(Buffer.concat([gnuBuildId, xenOther, xenPvh]))
    expect(noteSegments(withPvh.subarray(0, 4096))).toEqual([
      { offset: 0x1000, size: gnuBuildId.length * 1 + xenOther.length + xenPvh.length }
    ])
    expect(hasPvhEntry(withPvh.subarray(0x1000))).toBe(true)
    expect(hasPvhEntry(Buffer.concat([gnuBuildId, xenOther]))).toBe(false)
  })

  it("inspectKernelFile reads it from a file, and says no for an ELF without it", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "banger-pvh-"))
    try {
      const pvhKernel = path.join(dir, "vmlinux-pvh")
      fs.writeFileSync(pvhKernel, elfWithNotes(Buffer.concat([gnuBuildId, xenPvh]), 0x20000))
      const inspect = (file: string) =>
        Effect.runPromise(inspectKernelFile(file).pipe(Effect.provide(NodeContext.layer)))
      expect(await inspect(pvhKernel)).toMatchObject({ format: "elf", pvh: true })
      // A real ELF with notes (GNU build id), none of them Xen's.
      expect(await inspect("/bin/true")).toMatchObject({ format: "elf", pvh: false })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
