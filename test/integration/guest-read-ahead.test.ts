/**
 * GuestFs's batched reads through real debugfs: they answer exactly as one-request-at-a-time
 * reads do (usrmerged links, hostile names and link targets made to look like debugfs output),
 * in one or two debugfs runs, and what was read from an image serves an unmodified copy of it.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { GuestFs, type GuestReads, type ReadAheadPaths } from "../../src/layers/guest/guest-fs.js"
import type { TreeSpec } from "../support/ext4-tree.js"
import { guestImage, runGuest } from "../support/guest-images.js"

let work: string
let runLog: string
let savedPath: string | undefined
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-read-ahead-"))
  // Every debugfs run goes through this wrapper, which counts it.
  const bin = path.join(work, "bin")
  runLog = path.join(work, "debugfs-runs")
  fs.mkdirSync(bin)
  const real = ["/usr/sbin/debugfs", "/sbin/debugfs"].find((candidate) => fs.existsSync(candidate))
  fs.writeFileSync(path.join(bin, "debugfs"), `#!/bin/sh\necho "$*" >> '${runLog}'\nexec '${real}' "$@"\n`, {
    mode: 0o755
  })
  savedPath = process.env.PATH
  process.env.PATH = `${bin}:${process.env.PATH}`
})
afterAll(() => {
  process.env.PATH = savedPath
  fs.rmSync(work, { recursive: true, force: true })
})

/** Runs `use` and counts the debugfs processes it started. */
const counted = async <A>(use: () => Promise<A>): Promise<{ readonly result: A; readonly runs: number }> => {
  fs.rmSync(runLog, { force: true })
  const result = await use()
  const runs = fs.existsSync(runLog) ? fs.readFileSync(runLog, "utf8").trim().split("\n").length : 0
  return { result, runs }
}

const image = (name: string, specs: ReadonlyArray<TreeSpec>) => guestImage(work, name, specs)

/** A systemd-style usrmerged image, /sbin/init two links away from the binary. */
const systemdStyle: ReadonlyArray<TreeSpec> = [
  { path: "usr", type: "directory", mode: 0o755 },
  { path: "usr/sbin", type: "directory", mode: 0o755 },
  { path: "usr/bin", type: "directory", mode: 0o755 },
  { path: "usr/lib", type: "directory", mode: 0o755 },
  { path: "usr/lib/systemd", type: "directory", mode: 0o755 },
  { path: "usr/lib/systemd/systemd", type: "file", mode: 0o755, content: "ELF" },
  { path: "usr/lib/os-release", type: "file", mode: 0o644, content: "ID=debian\n" },
  { path: "usr/sbin/init", type: "symlink", mode: 0o777, target: "/lib/systemd/systemd" },
  { path: "sbin", type: "symlink", mode: 0o777, target: "usr/sbin" },
  { path: "bin", type: "symlink", mode: 0o777, target: "usr/bin" },
  { path: "lib", type: "symlink", mode: 0o777, target: "usr/lib" },
  { path: "etc", type: "directory", mode: 0o755 },
  { path: "etc/os-release", type: "symlink", mode: 0o777, target: "../usr/lib/os-release" },
  { path: "etc/passwd", type: "file", mode: 0o644, content: "root:x:0:0:root:/root:/bin/sh\n" },
  { path: "etc/long-link", type: "symlink", mode: 0o777, target: `/usr/lib/${"./".repeat(30)}os-release` },
  { path: "etc/systemd", type: "directory", mode: 0o755 },
  { path: "etc/systemd/system", type: "directory", mode: 0o755 },
  { path: "tmp", type: "directory", mode: 0o1777 }
]

const lookups = ["/sbin/init", "/etc/os-release", "/etc/passwd", "/etc/long-link", "/etc/systemd/system/x.wants/y"]

/** Everything GuestFs can say about `paths`, read with whatever batching is in effect. */
const describeAll = (file: string, paths: ReadonlyArray<string>) =>
  Effect.flatMap(GuestFs, (guest) =>
    Effect.forEach(paths, (p) =>
      Effect.all({
        realpath: guest.realpath(file, p),
        stat: guest.stat(file, p),
        lstat: guest.lstat(file, p),
        content: guest.readFile(file, p).pipe(
          Effect.map((bytes) => Buffer.from(bytes).toString("utf8")),
          Effect.catchAll((error) => Effect.succeed(`${error._tag}: ${error.message}`))
        )
      })
    )
  )

const batched = (file: string, reads: GuestReads, paths: ReadonlyArray<string>) =>
  runGuest(Effect.flatMap(GuestFs, (guest) => guest.batchReads(file, reads, describeAll(file, paths))))
const readAhead = (file: string, paths: ReadAheadPaths) =>
  runGuest(Effect.flatMap(GuestFs, (guest) => guest.readAhead(file, paths)))

describe("GuestFs.readAhead + batchReads", () => {
  it("answers as single reads do, in two debugfs runs where single reads take one per directory and link", async () => {
    const file = await image("systemd", systemdStyle)
    const single = await counted(() => runGuest(describeAll(file, lookups)))
    const ahead = await counted(() => readAhead(file, { paths: lookups, files: lookups }))
    const after = await counted(() => batched(file, ahead.result, lookups))
    expect(after.result).toEqual(single.result)
    expect(single.result[0]?.realpath).toBe("/usr/lib/systemd/systemd")
    expect(single.result[1]?.content).toBe("ID=debian\n")
    expect(single.result[3]?.content).toBe("ID=debian\n")
    expect(single.result[4]?.stat).toBeUndefined()
    console.log(`debugfs runs: ${single.runs} one at a time, ${ahead.runs} + ${after.runs} batched`)
    expect(ahead.runs).toBeLessThanOrEqual(3)
    // The long link's target lives in a block, not the inode: still read ahead (as a dump).
    expect(after.runs).toBe(0)
    expect(single.runs).toBeGreaterThan(10)
  })

  it("is not fooled by names and link targets that look like debugfs output", async () => {
    // Names cannot hold "/" (so no listing record), but can hold newlines; link targets both.
    const oddName = "x\ndebugfs: ls -p <2>\n# 0 1"
    const file = await image("hostile", [
      { path: "etc", type: "directory", mode: 0o755 },
      { path: `etc/${oddName}`, type: "file", mode: 0o644, content: "odd" },
      { path: "etc/passwd", type: "file", mode: 0o644, content: "real\n" },
      { path: "etc/link", type: "symlink", mode: 0o777, target: `passwd"\nFast link dest: "/nowhere` },
      { path: "etc/hop", type: "symlink", mode: 0o777, target: `nothing\n# 1 2\ndebugfs: stat "/etc/passwd"` },
      {
        path: "etc/forged",
        type: "symlink",
        mode: 0o777,
        target: "/\n/2/040755/0/0/.//\n/12/0100644/0/0/passwd/5/\n\ndebugfs: stat <12>\nInode: 12   Type: regular"
      },
      { path: "tmp", type: "directory", mode: 0o1777 }
    ])
    const paths = ["/etc/passwd", "/etc/link", "/etc/hop", "/etc/forged/passwd", `/etc/${oddName}`]
    const single = await runGuest(describeAll(file, paths))
    const reads = await readAhead(file, { paths, files: paths })
    expect(await batched(file, reads, paths)).toEqual(single)
    expect(single[0]?.content).toBe("real\n")
    expect(single[1]?.stat).toBeUndefined()
    expect(single[4]?.content).toBe("odd")
    const listing = await runGuest(Effect.flatMap(GuestFs, (guest) => guest.list(file, "/etc")))
    expect(listing.map((entry) => entry.name).sort()).toEqual(["forged", "hop", "link", "passwd", oddName].sort())
  })

  it("serves a copy from what was read of its image, and drops it once the copy is written", async () => {
    const file = await image("source", systemdStyle)
    const copy = path.join(path.dirname(file), "copy.ext4")
    const ahead = await readAhead(file, { paths: ["/etc/hostname", "/etc/systemd/system"], files: ["/etc/passwd"] })
    fs.copyFileSync(file, copy)
    const before = fs.readFileSync(file)
    const { result, runs } = await counted(() =>
      runGuest(
        Effect.flatMap(GuestFs, (guest) =>
          guest.batchReads(
            copy,
            ahead,
            Effect.gen(function* () {
              const passwd = Buffer.from(yield* guest.readFile(copy, "/etc/passwd")).toString()
              yield* guest.apply(copy, [
                { _tag: "WriteFile", path: "/etc/hostname", content: "vm1\n" },
                { _tag: "WriteFile", path: "/etc/passwd", content: "changed\n" },
                { _tag: "Mkdirp", path: "/etc/systemd/system/multi-user.target.wants" }
              ])
              // After the write, reads see the copy as it is now, not what was read ahead.
              const after = Buffer.from(yield* guest.readFile(copy, "/etc/passwd")).toString()
              const wants = yield* guest.stat(copy, "/etc/systemd/system/multi-user.target.wants")
              return { passwd, after, wants: wants?.kind }
            })
          )
        )
      )
    )
    expect(result).toEqual({ passwd: "root:x:0:0:root:/root:/bin/sh\n", after: "changed\n", wants: "directory" })
    // The write, then the fresh reads after it; nothing before it.
    expect(runs).toBeLessThanOrEqual(3)
    expect(fs.readFileSync(file).equals(before)).toBe(true)
    expect(
      Buffer.from(await runGuest(Effect.flatMap(GuestFs, (g) => g.readFile(copy, "/etc/hostname")))).toString()
    ).toBe("vm1\n")
  })
})
