/**
 * Go's TestReadGNUSparsePAXHeaders vectors (archive/tar reader_test.go, see
 * test/corpora/go-archive-tar/README.md): the PAX 0.0/0.1 maps as records through `interpretPax`,
 * the 1.0 maps at the start of the data through the tar reader, and the checks banger adds before
 * any byte is written (fragments in order, inside the size, adding up to the data).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { interpretPax, parsePaxInto } from "../../src/layers/rootfs/pax.js"
import { readArchive } from "../support/tar-corpus.js"

const records = (pairs: Record<string, string>) => new Map(Object.entries(pairs).map(([k, v]) => [k, Buffer.from(v)]))

const paxRecord = (key: string, value: string) => {
  const body = ` ${key}=${value}\n`
  let length = body.length + 1
  while (String(length).length + body.length !== length) length = String(length).length + body.length
  return `${length}${body}`
}

const padded = (data: Buffer) => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)])

const header = (name: string, type: string, size: number) => {
  const block = Buffer.alloc(512)
  block.write(name, 0)
  block.write("0000644\0", 100)
  block.write("0000000\0", 108)
  block.write("0000000\0", 116)
  block.write(`${size.toString(8).padStart(11, "0")}\0`, 124)
  block.write("00000000000\0", 136)
  block.write(type, 156)
  block.write("ustar\0" + "00", 257)
  block.fill(0x20, 148, 156)
  let sum = 0
  for (const byte of block) sum += byte
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148)
  return block
}

/** A PAX 1.0 sparse entry: the map's text, padded to blocks, then the fragments' bytes. */
const sparse10 = (mapText: string, realSize: number, data: Buffer, extra: Record<string, string> = {}) => {
  const map = padded(Buffer.from(mapText, "latin1"))
  const pax = Buffer.from(
    Object.entries({
      "GNU.sparse.major": "1",
      "GNU.sparse.minor": "0",
      "GNU.sparse.name": "sparse",
      "GNU.sparse.realsize": String(realSize),
      ...extra
    })
      .map(([key, value]) => paxRecord(key, value))
      .join("")
  )
  return Buffer.concat([
    header("PaxHeaders/sparse", "x", pax.length),
    padded(pax),
    header("GNUSparseFile/sparse", "0", map.length + data.length),
    map,
    padded(data),
    Buffer.alloc(1024)
  ])
}

describe("GNU sparse maps, as Go reads them", () => {
  it("PAX 0.0 and 0.1: the map in the records, numblocks checked, size and name taken over", () => {
    const read = (pairs: Record<string, string>) => {
      try {
        return interpretPax(records(pairs))
      } catch (error) {
        return (error as Error).message
      }
    }
    expect(read({ "GNU.sparse.numblocks": String(Number.MAX_SAFE_INTEGER), "GNU.sparse.map": "0,1,2,3" })).toMatch(
      /numblocks/
    )
    expect(read({ "GNU.sparse.numblocks": "4\0", "GNU.sparse.map": "0,1,2,3" })).toMatch(/numblocks/)
    expect(read({ "GNU.sparse.numblocks": "4", "GNU.sparse.map": "0,1,2,3" })).toMatch(/numblocks/)
    expect(read({ "GNU.sparse.numblocks": "2", "GNU.sparse.map": "0,1,2,3" })).toMatchObject({
      sparse: { format: "0.x", map: [0, 1, 2, 3], realSize: undefined }
    })
    expect(read({ "GNU.sparse.numblocks": "2", "GNU.sparse.map": "0, 1,2,3" })).toMatch(/GNU.sparse.map/)
    expect(
      read({ "GNU.sparse.numblocks": "2", "GNU.sparse.map": "0,1,02,3", "GNU.sparse.realsize": "4321" })
    ).toMatchObject({ sparse: { map: [0, 1, 2, 3], realSize: 4321 } })
    expect(read({ "GNU.sparse.numblocks": "2", "GNU.sparse.map": "0,one1,2,3" })).toMatch(/GNU.sparse.map/)
    expect(
      read({
        "GNU.sparse.major": "0",
        "GNU.sparse.minor": "0",
        "GNU.sparse.numblocks": "2",
        "GNU.sparse.map": "0,1,2,3",
        "GNU.sparse.size": "1234",
        "GNU.sparse.realsize": "4321",
        "GNU.sparse.name": "realname"
      })
    ).toMatchObject({ path: "realname", sparse: { map: [0, 1, 2, 3], realSize: 1234 } })
    expect(
      read({
        "GNU.sparse.major": "0",
        "GNU.sparse.minor": "0",
        "GNU.sparse.numblocks": "1",
        "GNU.sparse.map": "10737418240,512",
        "GNU.sparse.size": "10737418240",
        "GNU.sparse.name": "realname"
      })
    ).toMatchObject({ path: "realname", sparse: { map: [10737418240, 512], realSize: 10737418240 } })
    expect(
      read({ "GNU.sparse.major": "0", "GNU.sparse.minor": "0", "GNU.sparse.numblocks": "0", "GNU.sparse.map": "" })
    ).toMatchObject({ sparse: { map: [] } })
    expect(
      read({
        "GNU.sparse.major": "0",
        "GNU.sparse.minor": "1",
        "GNU.sparse.numblocks": "4",
        "GNU.sparse.map": "0,5,10,5,20,5,30,5"
      })
    ).toMatchObject({ sparse: { map: [0, 5, 10, 5, 20, 5, 30, 5] } })
    // Not sparse at all.
    expect(read({})).toMatchObject({ sparse: undefined })
    // Go reads an unknown version as a plain file; banger refuses it (its data is still encoded).
    expect(read({ "GNU.sparse.major": "2", "GNU.sparse.minor": "0" })).toMatch(/sparse format 2.0 is unknown/)
  })

  it("PAX 0.0's repeated offset/numbytes records join into one map, in order", () => {
    const into = new Map<string, Uint8Array>()
    parsePaxInto(
      Buffer.from(
        [
          ["GNU.sparse.numblocks", "2"],
          ["GNU.sparse.offset", "1"],
          ["GNU.sparse.numbytes", "2"],
          ["GNU.sparse.offset", "5"],
          ["GNU.sparse.numbytes", "1"]
        ]
          .map(([key, value]) => paxRecord(key!, value!))
          .join("")
      ),
      into
    )
    expect(interpretPax(into).sparse).toEqual({ format: "0.x", map: [1, 2, 5, 1], realSize: undefined })
    expect(() =>
      parsePaxInto(Buffer.from(paxRecord("GNU.sparse.numbytes", "1") + paxRecord("GNU.sparse.offset", "1")), new Map())
    ).toThrow(/out of order/)
  })

  it.effect("PAX 1.0: the map is read from the data's first blocks, then the fragments", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<{
        readonly text: string
        readonly realSize: number
        readonly map: ReadonlyArray<readonly [number, number]>
      }> = [
        { text: "0\n", realSize: 10, map: [] },
        { text: `${"0".repeat(300)}1\n${"0".repeat(1000)}5\n${"0".repeat(800)}2\n`, realSize: 7, map: [[5, 2]] },
        {
          text: "2\n10737418240\n512\n21474836480\n512\n",
          realSize: 21474836992,
          map: [
            [10737418240, 512],
            [21474836480, 512]
          ]
        },
        {
          text: `100\n${Array.from({ length: 100 }, (_, i) => `${i * 2 ** 30}\n512\n`).join("")}`,
          realSize: 99 * 2 ** 30 + 512,
          map: Array.from({ length: 100 }, (_, i) => [i * 2 ** 30, 512] as const)
        }
      ]
      for (const { text, realSize, map } of cases) {
        const dataLength = map.reduce((sum, [, length]) => sum + length, 0)
        const data = Buffer.alloc(dataLength, 0x61)
        const result = yield* readArchive(sparse10(text, realSize, data), { readData: true, chunk: 333 })
        expect(result.error).toBeUndefined()
        const [read] = result.entries
        expect(read!.entry).toMatchObject({ name: "sparse", size: realSize, sparse: map.flat() })
        expect(read!.length).toBe(realSize)
        // Pieces come as the chunks fell: joined where they touch, they are the fragments.
        const joined: Array<[number, number]> = []
        for (const [at, bytes] of read!.pieces!) {
          const last = joined.at(-1)
          if (last !== undefined && last[0] + last[1] === at) last[1] += bytes.length
          else joined.push([at, bytes.length])
        }
        expect(joined).toEqual(map.filter(([, length]) => length > 0))
      }
    })
  )

  it.effect("malformed maps and maps that do not fit their entry are InvalidLayer before any data", () =>
    Effect.gen(function* () {
      const failures: ReadonlyArray<readonly [Buffer, RegExp]> = [
        // Go: the map ends in the middle of a number (io.ErrUnexpectedEOF).
        [sparse10("1\n0\n", 5, Buffer.alloc(0)), /GNU sparse 1.0 map runs past the data|truncated/],
        [sparse10("1\n0x\n5\n", 5, Buffer.alloc(5)), /malformed GNU sparse 1.0 map/],
        // Go's validateSparseEntries.
        [sparse10("2\n0\n5\n3\n5\n", 10, Buffer.alloc(10)), /overlap or are out of order/],
        [sparse10("1\n8\n5\n", 10, Buffer.alloc(5)), /reaches past the file's size/],
        // Fragments that do not add up to the data there is (Go finds out while reading).
        [sparse10("1\n0\n5\n", 10, Buffer.alloc(7)), /covers 5 bytes, the entry holds 7/]
      ]
      for (const [archive, reason] of failures) {
        const result = yield* readArchive(archive, { readData: true })
        expect(result.entries).toEqual([])
        expect(result.error?._tag).toBe("InvalidLayer")
        expect(result.error?.reason).toMatch(reason)
      }
    })
  )
})
