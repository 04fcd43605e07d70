/**
 * Go's archive/tar test archives (test/corpora/go-archive-tar) through banger's tar reader, each
 * checked against what Go's own tests expect of it (reader_test.go: TestReader, TestReadTruncation,
 * TestReadHeaderOnly; writer_test.go for the archives only the writer tests use). Go's field names
 * are translated: Typeflag to banger's entry type, ModTime to whole seconds (banger's tree keeps
 * seconds), Mode to its permission bits. Every place banger deliberately reads differently is in
 * `differences` with its reason and is asserted to still hold.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { TarEntry } from "../../src/layers/rootfs/tar-reader.js"
import { contentsOf, md5, type ReadEntry, readArchive, TRUNCATED } from "../support/tar-corpus.js"

const CORPUS = path.join(import.meta.dirname, "../corpora/go-archive-tar")
const archive = (name: string) => fs.readFileSync(path.join(CORPUS, name))

type Expected = Partial<Omit<TarEntry, "xattrs" | "sparse" | "type">> & {
  readonly type?: string
  readonly xattrs?: Record<string, string>
  /** md5 of the contents, holes as zeros, where Go checks it. */
  readonly md5?: string
}

interface Vector {
  readonly file: string
  readonly entries?: ReadonlyArray<Expected>
  /** Go's error, as the part of banger's `InvalidLayer` reason that names the problem. */
  readonly error?: RegExp
}

const dsymonds = { uid: 73025, gid: 5000 }
const david = { mode: 0o644, uid: 1000, gid: 1000, size: 200, md5: "6f53234398c2449fe67c1812d993012f" }
const selinux = "unconfined_u:object_r:default_t:s0\0"
const longNumbers = Array.from({ length: 100 }, (_, i) => i + 1).join("")

/** TestReader's vectors, in its order. */
const testReader: ReadonlyArray<Vector> = [
  {
    file: "gnu.tar",
    entries: [
      { name: "small.txt", mode: 0o640, ...dsymonds, size: 5, mtime: 1244428340, type: "file" },
      { name: "small2.txt", mode: 0o640, ...dsymonds, size: 11, mtime: 1244436044, type: "file" }
    ].map((entry, i) => ({
      ...entry,
      md5: ["e38b27eaccb4391bdec553a7f3ae6b2f", "c65bd2e50a56a2138bf1716f2fd56fe9"][i]
    }))
  },
  {
    // Old GNU sparse, then PAX sparse 0.0, 0.1 and 1.0: the same 200 bytes each time.
    file: "sparse-formats.tar",
    entries: [
      { name: "sparse-gnu", ...david, mtime: 1392395740, type: "file" },
      { name: "sparse-posix-0.0", ...david, mtime: 1392342187, type: "file" },
      { name: "sparse-posix-0.1", ...david, mtime: 1392340456, type: "file" },
      { name: "sparse-posix-1.0", ...david, mtime: 1392337404, type: "file" },
      { name: "end", ...david, size: 4, mtime: 1392398319, type: "file", md5: "b0061974914468de549a2af8ced10316" }
    ]
  },
  {
    file: "star.tar",
    entries: [
      { name: "small.txt", mode: 0o640, ...dsymonds, size: 5, mtime: 1244592783, type: "file" },
      { name: "small2.txt", mode: 0o640, ...dsymonds, size: 11, mtime: 1244592783, type: "file" }
    ]
  },
  {
    file: "v7.tar",
    entries: [
      { name: "small.txt", mode: 0o444, ...dsymonds, size: 5, mtime: 1244593104, type: "file" },
      { name: "small2.txt", mode: 0o444, ...dsymonds, size: 11, mtime: 1244593104, type: "file" }
    ]
  },
  {
    // PAX path and linkpath; mtimes with fractions (1350244992.023960108) kept as whole seconds.
    file: "pax.tar",
    entries: [
      { name: `a/${longNumbers}`, mode: 0o664, uid: 1000, gid: 1000, size: 7, mtime: 1350244992, type: "file" },
      {
        name: "a/b",
        mode: 0o777,
        uid: 1000,
        gid: 1000,
        size: 0,
        mtime: 1350266320,
        type: "symlink",
        linkname: longNumbers
      }
    ]
  },
  { file: "pax-bad-hdr-file.tar", error: /malformed PAX record/ },
  // Go reads the .tar.bz2; the corpus keeps it decompressed beside it (Node has no bzip2).
  { file: "pax-bad-hdr-large.tar", error: /PAX header of \d+ bytes is too large/ },
  { file: "pax-bad-mtime-file.tar", error: /PAX mtime is not a decimal number/ },
  {
    // PAX size "000000000000000000000999".
    file: "pax-pos-size-file.tar",
    entries: [
      {
        name: "foo",
        mode: 0o640,
        uid: 319973,
        gid: 5000,
        size: 999,
        mtime: 1442282516,
        type: "file",
        md5: "0afb597b283fe61b5d4879669a350556"
      }
    ]
  },
  { file: "pax-records.tar", entries: [{ name: "file", type: "file", mtime: 0 }] },
  {
    // Go hands the two global headers out as entries of their own and lets none of their records
    // ("path": "global1", "mtime": "1500000000.0") change the files; banger skips them alike.
    file: "pax-global-records.tar",
    entries: [
      { name: "file1", type: "file", mtime: 0 },
      { name: "file2", type: "file", mtime: 0 },
      { name: "file3", type: "file", mtime: 0 },
      { name: "file4", type: "file", mtime: 1400000000 }
    ]
  },
  {
    file: "nil-uid.tar",
    entries: [{ name: "P1050238.JPG.log", mode: 0o664, uid: 0, gid: 0, size: 14, mtime: 1365454838, type: "file" }]
  },
  {
    file: "xattrs.tar",
    entries: [
      {
        name: "small.txt",
        mode: 0o644,
        uid: 1000,
        gid: 10,
        size: 5,
        mtime: 1386065770,
        type: "file",
        xattrs: { "user.key": "value", "user.key2": "value2", "security.selinux": selinux }
      },
      {
        name: "small2.txt",
        mode: 0o644,
        uid: 1000,
        gid: 10,
        size: 11,
        mtime: 1386065770,
        type: "file",
        xattrs: { "security.selinux": selinux }
      }
    ]
  },
  {
    // Several GNU long names and long links before one entry: the last of each counts.
    file: "gnu-multi-hdrs.tar",
    entries: [{ name: "GNU2/GNU2/long-path-name", linkname: "GNU4/GNU4/long-linkpath-name", mtime: 0, type: "symlink" }]
  },
  {
    // GNU incremental: a dump directory ('D', its listing skipped), atime/ctime in the GNU fields
    // (where a ustar prefix would be), and an old GNU sparse file of 512 MiB that is all hole.
    file: "gnu-incremental.tar",
    entries: [
      { name: "test2/", mode: 0o755, uid: 1000, gid: 1000, size: 0, mtime: 1441973427, type: "directory" },
      { name: "test2/foo", mode: 0o644, uid: 1000, gid: 1000, size: 64, mtime: 1441973363, type: "file" },
      { name: "test2/sparse", mode: 0o644, uid: 1000, gid: 1000, size: 536870912, mtime: 1441973427, type: "file" }
    ]
  },
  {
    // Several PAX headers before one entry: the last replaces the others whole.
    file: "pax-multi-hdrs.tar",
    entries: [{ name: "bar", linkname: "PAX4/PAX4/long-linkpath-name", mtime: 0, type: "symlink" }]
  },
  {
    // A GNU long name is a C string: cut at its first NUL.
    file: "gnu-long-nul.tar",
    entries: [{ name: "0123456789", mode: 0o644, uid: 1000, gid: 1000, mtime: 1486082191, type: "file" }]
  },
  {
    file: "gnu-utf8.tar",
    entries: [{ name: "☺☻☹".repeat(18), mode: 0o644, uid: 1000, gid: 1000, mtime: 0, type: "file" }]
  },
  // gnu-not-utf8.tar: see `differences`.
  { file: "pax-nul-xattrs.tar", error: /PAX record key contains a NUL byte/ },
  { file: "pax-nul-path.tar", error: /PAX path contains a NUL byte/ },
  { file: "neg-size.tar", error: /negative or malformed base-256/ },
  { file: "issue10968.tar", error: /negative or malformed base-256/ },
  // Its PAX record's length runs past its data, and the stream ends before the padding.
  { file: "issue11169.tar", error: /malformed PAX record/ },
  { file: "issue12435.tar", error: /negative or malformed base-256/ },
  {
    // Written by Go before 1.8: a ustar prefix under the GNU magic (its atime/ctime do not parse).
    file: "invalid-go17.tar",
    entries: [{ name: `${"a".repeat(97)}/foo`, uid: 0o10000000, mtime: 0, type: "file" }]
  },
  // ustar-file-devs.tar: see `differences`.
  { file: "gnu-nil-sparse-data.tar", entries: [{ name: "sparse.db", type: "file", size: 1000, mtime: 0 }] },
  { file: "gnu-nil-sparse-hole.tar", entries: [{ name: "sparse.db", type: "file", size: 1000, mtime: 0 }] },
  // PAX 1.0 sparse, named by GNU.sparse.name, sized by GNU.sparse.realsize (the PAX size is the data's).
  { file: "pax-nil-sparse-data.tar", entries: [{ name: "sparse.db", type: "file", size: 1000, mtime: 0 }] },
  { file: "pax-nil-sparse-hole.tar", entries: [{ name: "sparse.db", type: "file", size: 1000, mtime: 0 }] },
  {
    file: "trailing-slash.tar",
    entries: [{ name: "123456789/".repeat(30), type: "directory", mtime: 0 }]
  }
]

/** Archives only Go's writer tests use: what they say was written, read back. */
const writerArchives: ReadonlyArray<Vector> = [
  {
    file: "writer.tar",
    entries: [
      {
        name: "small.txt",
        size: 5,
        mode: 0o640,
        ...dsymonds,
        mtime: 1246508266,
        type: "file",
        md5: md5(Buffer.from("Kilts"))
      },
      {
        name: "small2.txt",
        size: 11,
        mode: 0o640,
        ...dsymonds,
        mtime: 1245217492,
        type: "file",
        md5: md5(Buffer.from("Google.com\n"))
      },
      { name: "link.txt", type: "symlink", linkname: "small.txt", mode: 0o777, uid: 1000, gid: 1000, mtime: 1314603082 }
    ]
  },
  {
    file: "ustar.tar",
    entries: [
      {
        name: `${"longname/".repeat(15)}file.txt`,
        size: 6,
        mode: 0o644,
        uid: 501,
        gid: 20,
        mtime: 1360135598,
        type: "file",
        md5: md5(Buffer.from("hello\n"))
      }
    ]
  },
  {
    file: "hardlink.tar",
    entries: [
      {
        name: "file.txt",
        size: 15,
        mode: 0o644,
        uid: 1000,
        gid: 100,
        mtime: 1425484303,
        type: "file",
        md5: md5(Buffer.from("Slartibartfast\n"))
      },
      { name: "hard.txt", type: "link", linkname: "file.txt", mode: 0o644, uid: 1000, gid: 100, mtime: 1425484303 }
    ]
  },
  {
    file: "file-and-dir.tar",
    entries: [
      { name: "small.txt", type: "file", size: 5 },
      { name: "dir/", type: "directory", size: 0 }
    ]
  },
  {
    file: "ustar-file-reg.tar",
    entries: [{ name: "foo", type: "file", size: 684, mode: 0o640, uid: 319973, gid: 5000, mtime: 1442282516 }]
  }
]

/** Where banger reads an archive differently from Go, on purpose. */
const differences = [
  {
    file: "gnu-not-utf8.tar",
    go: { name: "hi\\x80\\x81\\x82\\x83bye" },
    banger: { name: "hi\ufffd\ufffd\ufffd\ufffdbye" },
    why: "banger's tree holds names as text: bytes that are not UTF-8 become U+FFFD (Go keeps raw bytes)"
  },
  {
    file: "ustar-file-devs.tar",
    go: { devMajor: 1, devMinor: 1 },
    banger: { devMajor: 0, devMinor: 0 },
    why: "device numbers are read for device entries only: some writers leave garbage there in other headers"
  }
] as const

const project = (read: ReadEntry, expected: Expected) => {
  const { entry } = read
  const actual: Record<string, unknown> = {}
  for (const key of Object.keys(expected) as Array<keyof Expected>) {
    if (key === "md5") actual.md5 = md5(contentsOf(read))
    else if (key === "xattrs") {
      actual.xattrs = Object.fromEntries(
        entry.xattrs.map(([name, value]) => [name, Buffer.from(value).toString("latin1")])
      )
    } else actual[key] = entry[key]
  }
  return actual
}

const check = (vector: Vector) =>
  Effect.gen(function* () {
    const bytes = archive(vector.file)
    // Whole, then a byte at a time (every boundary inside a header, a map or data is crossed),
    // then a block at a time: each header, extended header and map block a chunk of its own,
    // scribbled over once passed (see readArchive), so nothing may be kept as a view of it.
    for (const chunk of [bytes.length, 1, 7, 512]) {
      for (const readData of [true, false]) {
        const result = yield* readArchive(bytes, { readData, chunk })
        if (vector.error !== undefined) {
          expect(result.error?._tag).toBe("InvalidLayer")
          expect(result.error?.reason).toMatch(vector.error)
          continue
        }
        expect(result.error).toBeUndefined()
        const expected = vector.entries ?? []
        expect(result.entries.map((read) => read.entry.name)).toEqual(expected.map((entry) => entry.name))
        result.entries.forEach((read, index) => {
          const wanted = readData ? expected[index]! : { ...expected[index]!, md5: undefined }
          const { md5: _, ...withoutSum } = wanted
          expect(project(read, readData ? wanted : withoutSum)).toEqual(readData ? wanted : withoutSum)
          if (readData && read.entry.type === "file") expect(read.length).toBe(read.entry.size)
        })
      }
    }
  })

describe("Go's archive/tar corpus through banger's tar reader", () => {
  for (const vector of testReader) {
    it.effect(`TestReader: ${vector.file}`, () => check(vector))
  }
  for (const vector of writerArchives) {
    it.effect(`writer test archive: ${vector.file}`, () => check(vector))
  }

  for (const difference of differences) {
    it.effect(`differs from Go on purpose: ${difference.file} (${difference.why})`, () =>
      Effect.gen(function* () {
        const result = yield* readArchive(archive(difference.file), { readData: true })
        expect(result.error).toBeUndefined()
        const entry = result.entries[0]!.entry
        expect(project(result.entries[0]!, difference.banger)).toEqual(difference.banger)
        for (const [key, value] of Object.entries(difference.go))
          expect(entry[key as keyof TarEntry]).not.toEqual(value)
      })
    )
  }

  it.effect("sparse files of 60 GB (old GNU and PAX 1.0): the fragments land where the map puts them", () =>
    Effect.gen(function* () {
      // writer_test.go: six holes of 1e10-100 bytes, each followed by "0123456789" x 10 (Go writes
      // the fragment as the whole block that ends the hole's 1e10).
      const tail = Buffer.from("0123456789".repeat(10))
      for (const [file, name] of [
        ["gnu-sparse-big.tar", "gnu-sparse"],
        ["pax-sparse-big.tar", "pax-sparse"]
      ] as const) {
        const result = yield* readArchive(archive(file), { readData: true, chunk: 100 })
        expect(result.error).toBeUndefined()
        const [read] = result.entries
        expect(read!.entry).toMatchObject({ name, type: "file", size: 6e10 })
        expect(read!.length).toBe(6e10)
        const pieces = read!.pieces!
        let dataBytes = 0
        for (const [at, bytes] of pieces) {
          dataBytes += bytes.length
          for (let i = 0; i < bytes.length; i++) {
            const offset = at + i
            const inSegment = offset % 1e10
            const want = inSegment >= 1e10 - 100 ? tail[inSegment - (1e10 - 100)]! : 0
            if (bytes[i] !== want) expect.fail(`${file}: byte ${offset} is ${bytes[i]}, want ${want}`)
          }
        }
        // Only the six data fragments are read; the rest of the 60 GB are holes.
        expect(dataBytes).toBe(6 * 512)
        expect(new Set(pieces.map(([at]) => Math.floor(at / 1e10))).size).toBe(6)
      }
    })
  )

  it.effect("writer-big*.tar: Go's writer tests keep only the header of a 16 GiB file; reading on is truncated", () =>
    Effect.gen(function* () {
      for (const [file, name] of [
        ["writer-big.tar", "tmp/16gig.txt"],
        ["writer-big-long.tar", `${"longname/".repeat(15)}16gig.txt`]
      ] as const) {
        const result = yield* readArchive(archive(file), { readData: false })
        expect(result.entries.map((read) => [read.entry.name, read.entry.size])).toEqual([[name, 16 * 2 ** 30]])
        expect(result.error?.reason).toBe(TRUNCATED)
      }
    })
  )

  it.effect("TestReadHeaderOnly: header-only types read no data whatever their size field says", () =>
    Effect.gen(function* () {
      const result = yield* readArchive(archive("hdr-only.tar"), { readData: true })
      expect(result.error).toBeUndefined()
      expect(result.entries).toHaveLength(16)
      for (const [index, read] of result.entries.entries()) {
        if (read.entry.type !== "file") expect(read.length).toBe(0)
        // The last 8 repeat the first 8 with sizes set: read the same.
        if (index >= 8) expect(read.entry).toEqual(result.entries[index - 8]!.entry)
      }
      expect(result.entries.slice(0, 8).map((read) => read.entry.type)).toEqual([
        "directory",
        "fifo",
        "file",
        "link",
        "char",
        "block",
        "symlink",
        "symlink"
      ])
    })
  )

  it.effect("TestReadTruncation: how many entries, then the end or which failure", () =>
    Effect.gen(function* () {
      const data1 = archive("gnu.tar")
      const data2 = Buffer.concat([archive("ustar-file-reg.tar"), Buffer.alloc(10 * 512)])
      const pax = archive("pax-path-hdr.tar")
      const sparse = archive("sparse-formats.tar")
      const trash = Buffer.from("garbage ".repeat(64))
      const cut = (bytes: Buffer, end: number) => bytes.subarray(0, end)
      const cat = (...parts: Array<Buffer>) => Buffer.concat(parts)
      const EOF = "end"
      const UNEXPECTED_EOF = TRUNCATED
      const HEADER = /checksum/
      const vectors: ReadonlyArray<readonly [Buffer, number, string | RegExp]> = [
        [Buffer.alloc(0), 0, EOF],
        [cut(data1, 511), 0, UNEXPECTED_EOF],
        [cut(data1, 512), 1, UNEXPECTED_EOF],
        [cut(data1, 1024), 1, EOF],
        [cut(data1, 1536), 2, UNEXPECTED_EOF],
        [cut(data1, 2048), 2, EOF],
        [data1, 2, EOF],
        [cat(cut(data1, 2048), cut(data2, 1536)), 3, EOF],
        [cut(data2, 511), 0, UNEXPECTED_EOF],
        [cut(data2, 512), 1, UNEXPECTED_EOF],
        [cut(data2, 1195), 1, UNEXPECTED_EOF],
        [cut(data2, 1196), 1, EOF],
        [cut(data2, 1200), 1, EOF],
        [cut(data2, 1535), 1, EOF],
        [cut(data2, 1536), 1, EOF],
        [cat(cut(data2, 1536), cut(trash, 1)), 1, UNEXPECTED_EOF],
        [cat(cut(data2, 1536), cut(trash, 511)), 1, UNEXPECTED_EOF],
        [cat(cut(data2, 1536), trash), 1, HEADER],
        [cut(data2, 2048), 1, EOF],
        [cat(cut(data2, 2048), cut(trash, 1)), 1, UNEXPECTED_EOF],
        [cat(cut(data2, 2048), cut(trash, 511)), 1, UNEXPECTED_EOF],
        [cat(cut(data2, 2048), trash), 1, HEADER],
        [cut(data2, 2560), 1, EOF],
        [cat(cut(data2, 2560), cut(trash, 1)), 1, EOF],
        [cat(cut(data2, 2560), cut(trash, 511)), 1, EOF],
        [cat(cut(data2, 2560), trash), 1, EOF],
        [cut(data2, 3072), 1, EOF],
        [pax, 0, EOF],
        [cat(pax, cut(trash, 1)), 0, UNEXPECTED_EOF],
        [cat(pax, cut(trash, 511)), 0, UNEXPECTED_EOF],
        [cut(sparse, 511), 0, UNEXPECTED_EOF],
        [cut(sparse, 512), 0, UNEXPECTED_EOF],
        [cut(sparse, 3584), 1, EOF],
        [cut(sparse, 9200), 1, EOF],
        [cut(sparse, 9216), 1, EOF],
        [cut(sparse, 9728), 2, UNEXPECTED_EOF],
        [cut(sparse, 10240), 2, EOF],
        [cut(sparse, 11264), 2, UNEXPECTED_EOF],
        [sparse, 5, EOF],
        [cat(sparse, trash), 5, EOF]
      ]
      for (const [index, [input, count, outcome]] of vectors.entries()) {
        // Go's "auto" (entries skipped) and "manual" (data read) discards.
        for (const readData of [false, true]) {
          const result = yield* readArchive(input, { readData, chunk: 100 })
          const got = result.error === undefined ? EOF : result.error.reason
          expect.soft([index, readData, result.entries.length]).toEqual([index, readData, count])
          if (typeof outcome === "string") expect.soft([index, readData, got]).toEqual([index, readData, outcome])
          else expect.soft(got, `vector ${index}`).toMatch(outcome)
        }
      }
    })
  )
})
