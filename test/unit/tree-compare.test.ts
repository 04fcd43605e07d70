/**
 * The scale bench's exactness check (bench/tree-compare.ts) on real trees: two copies made by
 * `cp -a` compare equal, and each kind of difference it promises to see is seen, one at a time.
 * Needs getfattr (Debian: attr) and a filesystem with user xattrs for the temp dir.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "@effect/vitest"
import { compareTrees } from "../../bench/tree-compare.js"

let dir: string
let reference: string
let actual: string

const build = (root: string) => {
  fs.mkdirSync(path.join(root, "a/b/c"), { recursive: true })
  fs.writeFileSync(path.join(root, "a/one.txt"), "one\n")
  fs.writeFileSync(path.join(root, "a/b/big.bin"), Buffer.alloc(3 * 1024 * 1024, 7))
  fs.writeFileSync(path.join(root, "a/b/c/two.txt"), "two\n", { mode: 0o600 })
  fs.linkSync(path.join(root, "a/one.txt"), path.join(root, "a/b/one-again.txt"))
  fs.symlinkSync("../one.txt", path.join(root, "a/b/link"))
  execFileSync("setfattr", ["-n", "user.origin", "-v", "bench", path.join(root, "a/one.txt")])
}

const differences = async (extraAtRoot?: ReadonlyArray<string>) =>
  (await compareTrees(reference, actual, extraAtRoot ? { extraAtRoot } : {})).first.map((d) => `${d.path}: ${d.what}`)

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "banger-tree-compare-"))
  reference = path.join(dir, "reference")
  actual = path.join(dir, "actual")
  fs.mkdirSync(reference)
  build(reference)
  execFileSync("cp", ["-a", reference, actual])
})

afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

describe("compareTrees", () => {
  it("finds nothing between a tree and its cp -a copy, and counts what it compared", async () => {
    const result = await compareTrees(reference, actual)
    expect(result.first).toEqual([])
    expect(result.differences).toBe(0)
    // a, a/one.txt, a/b, a/b/big.bin, a/b/c, a/b/c/two.txt, a/b/one-again.txt, a/b/link
    expect(result.entries).toBe(8)
    expect(result.fileBytes).toBe(4 + 3 * 1024 * 1024 + 4)
    expect(result.hardlinkGroups).toBe(1)
    // The xattr belongs to the inode, so both of its names carry it.
    expect(result.xattrEntries).toBe(2)
  })

  it("sees a changed byte in a large file, a mode, a link target and an owner", async () => {
    const fd = fs.openSync(path.join(actual, "a/b/big.bin"), "r+")
    fs.writeSync(fd, Buffer.from([8]), 0, 1, 2 * 1024 * 1024)
    fs.closeSync(fd)
    fs.chmodSync(path.join(actual, "a/b/c/two.txt"), 0o640)
    fs.unlinkSync(path.join(actual, "a/b/link"))
    fs.symlinkSync("../two.txt", path.join(actual, "a/b/link"))
    fs.lchownSync(path.join(actual, "a/b/c"), 1000, 1000)
    expect((await differences()).sort()).toEqual([
      "a/b/big.bin: contents (sha256)",
      "a/b/c/two.txt: mode",
      "a/b/c: owner",
      "a/b/link: link target"
    ])
  })

  it("sees a broken hardlink group, a lost xattr, a missing and an extra entry", async () => {
    fs.unlinkSync(path.join(actual, "a/b/one-again.txt"))
    fs.copyFileSync(path.join(actual, "a/one.txt"), path.join(actual, "a/b/one-again.txt"))
    execFileSync("setfattr", ["-x", "user.origin", path.join(actual, "a/one.txt")])
    fs.rmSync(path.join(actual, "a/b/c/two.txt"))
    fs.writeFileSync(path.join(actual, "a/extra"), "")
    expect((await differences()).sort()).toEqual([
      "a/b/c/two.txt: missing in banger's tree",
      "a/b/one-again.txt: hardlink group",
      // The copy has none; the original name lost its own.
      "a/b/one-again.txt: xattrs",
      "a/extra: not in the reference",
      "a/one.txt: xattrs"
    ])
  })

  it("sees a type change and a size change, and lets only the named root entries be extra", async () => {
    fs.rmSync(path.join(actual, "a/b/c"), { recursive: true })
    fs.writeFileSync(path.join(actual, "a/b/c"), "")
    fs.appendFileSync(path.join(actual, "a/b/big.bin"), "x")
    fs.mkdirSync(path.join(actual, "lost+found"))
    expect((await differences(["lost+found"])).sort()).toEqual(["a/b/big.bin: size", "a/b/c: type"])
    expect(await differences()).toContain("lost+found: not in the reference")
  })
})
