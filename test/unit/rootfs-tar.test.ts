import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { InvalidLayer } from "../../src/domain/errors.js"
import { makeByteReader } from "../../src/layers/rootfs/byte-reader.js"
import { normalizeEntryPath } from "../../src/layers/rootfs/entry-path.js"
import { interpretPax, parsePaxInto } from "../../src/layers/rootfs/pax.js"
import { decodeHeader, TarFormatError } from "../../src/layers/rootfs/tar-header.js"
import { makeTarReader, type TarEntry } from "../../src/layers/rootfs/tar-reader.js"
import { buildTar } from "../support/layers.js"

const components = (raw: string) => {
  const result = normalizeEntryPath(raw)
  return result._tag === "Path" ? result.components.join("/") : `unsafe: ${result.reason}`
}

/** Reads a whole archive handed out in chunks of `chunkSize` bytes. */
const readAll = (tarball: Uint8Array, chunkSize: number) =>
  Effect.gen(function* () {
    let offset = 0
    const pull = Effect.sync(() => {
      if (offset >= tarball.length) return undefined
      const chunk = tarball.subarray(offset, offset + chunkSize)
      offset += chunkSize
      return [chunk]
    })
    const bytes = makeByteReader(pull, () => new InvalidLayer({ layer: "test", reason: "truncated" }))
    const reader = makeTarReader(bytes, "test")
    const entries: Array<{ entry: TarEntry; data: string }> = []
    while (true) {
      const entry = yield* reader.next
      if (entry === undefined) break
      let data = ""
      // Read the data of every other entry only: the reader must skip what is left unread.
      if (entries.length % 2 === 0) {
        while (true) {
          const chunk = yield* reader.readData
          if (chunk === undefined) break
          data += typeof chunk === "number" ? "\0".repeat(chunk) : Buffer.from(chunk).toString("latin1")
        }
      }
      entries.push({ entry, data })
    }
    return entries
  })

describe("rootfs tar reading", () => {
  it("normalizes names lexically inside the root", () => {
    expect(components("./a/b/")).toBe("a/b")
    expect(components("/abs//x/./y")).toBe("abs/x/y")
    expect(components("a/../b")).toBe("b")
    expect(components("a/b/../../c")).toBe("c")
    expect(components("./")).toBe("")
    expect(components("..")).toMatch(/^unsafe/)
    expect(components("/../etc")).toMatch(/^unsafe/)
    expect(components("a/../../x")).toMatch(/^unsafe/)
    expect(components("a\0b")).toMatch(/^unsafe: name contains a NUL/)
    expect(components("...")).toBe("...")
    expect(components("a/..b")).toBe("a/..b")
  })

  it("decodes headers: checksum, base-256 numbers, v7 directories, unsupported types", () => {
    const block = Buffer.alloc(512)
    const seal = () => {
      block.fill(0x20, 148, 156)
      let sum = 0
      for (const byte of block) sum += byte
      block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1")
    }
    block.write("dir/", 0)
    block.write("0000755\0", 100)
    // Base-256 uid (above what 7 octal digits hold) and size.
    block[108] = 0x80
    block.writeUInt32BE(3_000_000_000, 112)
    block.write("0000000\0", 116)
    block[124] = 0x80
    block.writeUInt32BE(0, 128)
    block.writeUInt32BE(12345, 132)
    block.write(`${(1_700_000_000).toString(8)}\0`, 136)
    seal()
    const header = decodeHeader(block)!
    expect(header).toMatchObject({
      kind: "directory",
      mode: 0o755,
      uid: 3_000_000_000,
      size: 12345,
      mtime: 1_700_000_000
    })
    expect(Buffer.from(header.name).toString()).toBe("dir/")

    block[10] = 1
    expect(() => decodeHeader(block)).toThrow(TarFormatError)
    seal()
    block[156] = "S".charCodeAt(0)
    seal()
    expect(decodeHeader(block)).toMatchObject({ kind: "gnu-sparse", sparse: { map: [], extended: false } })
    block[156] = "V".charCodeAt(0)
    seal()
    expect(() => decodeHeader(block)).toThrow(/unsupported tar entry type/)
    expect(decodeHeader(Buffer.alloc(512))).toBeUndefined()

    // Old writers summed signed chars: a name with bytes over 127 checks either way, nothing else does.
    block[156] = "0".charCodeAt(0)
    block.write("caf\u00e9/\u00fc", 0, "latin1")
    block.fill(0x20, 148, 156)
    let signed = 0
    for (const byte of block) signed += byte > 127 ? byte - 256 : byte
    block.write(`${signed.toString(8).padStart(6, "0")}\0 `, 148, "latin1")
    expect(Buffer.from(decodeHeader(block)!.name).toString("latin1")).toBe("caf\u00e9/\u00fc")
    block.write(`${(signed + 1).toString(8).padStart(6, "0")}\0 `, 148, "latin1")
    expect(() => decodeHeader(block)).toThrow(/checksum/)
    seal()
    expect(decodeHeader(block)!.kind).toBe("file")
    // Read four bytes at a time where aligned, one at a time elsewhere: both agree, both refuse.
    const unaligned = new Uint8Array(513).subarray(1)
    unaligned.set(block)
    expect(decodeHeader(unaligned)!.kind).toBe("file")
    block[300] ^= 0xff
    unaligned[300] ^= 0xff
    expect(() => decodeHeader(block)).toThrow(/checksum/)
    expect(() => decodeHeader(unaligned)).toThrow(/checksum/)
  })

  it("parses PAX records as raw bytes and refuses malformed ones", () => {
    const records = new Map<string, Uint8Array>()
    const value = Buffer.from([0xff, 0x00, 0x0a, 0x80])
    const record = Buffer.concat([Buffer.from("30 SCHILY.xattr.user.bin="), value, Buffer.from("\n")])
    parsePaxInto(Buffer.concat([record, Buffer.from("12 uid=1000\n")]), records)
    const pax = interpretPax(records)
    expect(pax.uid).toBe(1000)
    expect(Buffer.from(pax.xattrs[0]![1])).toEqual(value)
    expect(() => parsePaxInto(Buffer.from("99 uid=1\n"), new Map())).toThrow(/malformed/)
    expect(() => parsePaxInto(Buffer.from("x uid=1\n"), new Map())).toThrow(/malformed/)
    expect(() => parsePaxInto(Buffer.from("8 uid=12\n"), new Map())).toThrow(/malformed/)
    expect(() => interpretPax(new Map([["uid", Buffer.from("-1")]]))).toThrow(/uid/)
    expect(() => interpretPax(new Map([["uid", Buffer.from("4294967296")]]))).toThrow(/out of range/)
    expect(() => interpretPax(new Map([["GNU.sparse.major", Buffer.from("2")]]))).toThrow(/sparse format 2/)
    expect(interpretPax(new Map([["mtime", Buffer.from("-12.5")]])).mtime).toBe(-13)
  })

  it.effect("reads the same entries and data whatever the chunking", () =>
    Effect.gen(function* () {
      const tarball = yield* Effect.promise(() =>
        buildTar([
          { type: "file", name: "a", content: "x".repeat(1000) },
          { type: "file", name: "b", content: "y".repeat(513) },
          { type: "file", name: `${"long/".repeat(40)}c`, content: "z", xattrs: { "user.k": Uint8Array.from([0, 1]) } },
          { type: "symlink", name: "s", target: "a" },
          { type: "file", name: "empty" },
          { type: "file", name: "last", content: "the end" }
        ])
      )
      const reference = yield* readAll(tarball, tarball.length)
      expect(reference.map(({ entry }) => entry.name)).toEqual([
        "a",
        "b",
        `${"long/".repeat(40)}c`,
        "s",
        "empty",
        "last"
      ])
      expect(reference[0]!.data).toBe("x".repeat(1000))
      expect(reference[2]!.data).toBe("z")
      expect(reference[4]!.data).toBe("")
      for (const chunkSize of [1, 7, 511, 512, 513, 4096]) {
        expect(yield* readAll(tarball, chunkSize)).toEqual(reference)
      }
      const truncated = yield* readAll(tarball.subarray(0, 700), 100).pipe(Effect.flip)
      expect(truncated.reason).toBe("truncated")
    })
  )
})

describe("byte reader", () => {
  it.effect("gives each chunk back once, at the first fill after it has moved past it, and the rest at drain", () =>
    Effect.gen(function* () {
      const chunks = [new Uint8Array(4).fill(1), new Uint8Array(4).fill(2), new Uint8Array(4).fill(3)]
      let next = 0
      const pull = Effect.sync(() => (next < chunks.length ? [chunks[next++]!] : undefined))
      const released: Array<number> = []
      const bytes = makeByteReader(
        pull,
        () => new InvalidLayer({ layer: "test", reason: "truncated" }),
        (chunk) => released.push(chunk[0]!)
      )
      // Six bytes: all of the first chunk, half of the second; nothing given back before a fill.
      expect(Array.from((yield* bytes.readExact(6))!)).toEqual([1, 1, 1, 1, 2, 2])
      expect(released).toEqual([])
      // The next fill (for the third chunk) gives back the first; the second is still being read.
      expect(Array.from((yield* bytes.readExact(4))!)).toEqual([2, 2, 3, 3])
      expect(released).toEqual([1])
      yield* bytes.drain
      expect(released).toEqual([1, 2, 3])
    })
  )
})
