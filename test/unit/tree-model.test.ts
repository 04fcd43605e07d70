import { describe, expect, it } from "@effect/vitest"
import { toTreeEntries } from "../../src/domain/entry-list.js"
import { FileBlocks, fileBlocksPacking } from "../../src/layers/ext4/image/draft-contents.js"
import { listTree } from "../../src/layers/rootfs/tree-listing.js"
import { TreeModel } from "../../src/layers/rootfs/tree-model.js"

const meta = { mode: 0o644, uid: 0, gid: 0, mtime: 0 }
const pathsOf = (model: TreeModel) => toTreeEntries(listTree(model)).map((entry) => entry.path)

describe("the tree model's listing", () => {
  it("orders siblings by the bytes of their UTF-8 names", () => {
    const names = ["b", "a", "Z", "é", "\u{1F600}", "\uFFFD", "a.b", "a-b", "文件"]
    for (const withEmoji of [true, false]) {
      const model = new TreeModel()
      for (const name of names.filter((candidate) => withEmoji || candidate !== "\u{1F600}")) {
        model.attach(model.root, name, model.newInode("file", meta))
      }
      const paths = pathsOf(model)
      const expected = [...paths.slice(1)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
      expect(paths).toEqual(["", ...expected])
    }
    // U+FFFD (EF BF BD) sorts before U+1F600 (F0 ...) in bytes, after it in UTF-16 units.
    const model = new TreeModel()
    model.attach(model.root, "\uFFFD", model.newInode("file", meta))
    model.attach(model.root, "\u{1F600}", model.newInode("file", meta))
    expect(pathsOf(model)).toEqual(["", "\uFFFD", "\u{1F600}"])
  })

  it("lists depth-first, names a shared inode's first name its primary, and leaves out what was detached", () => {
    const model = new TreeModel()
    const b = model.attach(model.root, "b", model.newInode("directory", { ...meta, mode: 0o755 }))
    const a = model.attach(model.root, "a", model.newInode("directory", { ...meta, mode: 0o755 }))
    const shared = model.newInode("file", { ...meta, uid: 7 })
    model.setSize(shared, 3)
    model.attach(b, "x", shared)
    model.attach(a, "y", shared)
    const gone = model.attach(a, "gone", model.newInode("directory", meta))
    model.attach(gone, "inside", model.newInode("file", meta))
    model.detach(gone)
    const entries = toTreeEntries(listTree(model))
    expect(entries.map((entry) => [entry.path, entry.hardlinkTo])).toEqual([
      ["", undefined],
      ["a", undefined],
      ["a/y", undefined],
      ["b", undefined],
      ["b/x", "a/y"]
    ])
    expect(entries[4]).toMatchObject({ type: "file", uid: 7, size: 3 })
    expect(model.isAttached(gone)).toBe(false)
    expect(model.pathOf(model.child(b, "x")!)).toBe("b/x")
  })

  it("keeps an image draft's one-run contents as numbers and gives back equal ones; others as they are", () => {
    const model = new TreeModel(fileBlocksPacking)
    const stored = (content: FileBlocks) => {
      const inode = model.newInode("file", meta)
      model.setSize(inode, content.size)
      model.setContent(inode, content)
      return model.content(inode) as FileBlocks
    }
    const oneRun = stored(FileBlocks.of(9000, [{ start: 4_000_000_000, length: 3 }]))
    expect([oneRun.size, oneRun.runs, oneRun.logical]).toEqual([9000, [{ start: 4_000_000_000, length: 3 }], undefined])
    expect(stored(FileBlocks.of(0, [])).runs).toEqual([])
    const twoRuns = FileBlocks.of(9000, [
      { start: 10, length: 1 },
      { start: 20, length: 2 }
    ])
    expect(stored(twoRuns)).toBe(twoRuns)
    const sparse = FileBlocks.of(1 << 20, [{ start: 30, length: 1 }], [200])
    expect(stored(sparse)).toBe(sparse)
    // A content whose size is not the inode's is kept whole rather than rebuilt with the wrong size.
    const inode = model.newInode("file", meta)
    model.setSize(inode, 5)
    const odd = FileBlocks.of(4, [{ start: 1, length: 1 }])
    model.setContent(inode, odd)
    expect(model.content(inode)).toBe(odd)
  })
  it("keeps sizes of 4 GiB and more, times outside 1970-2106 and odd ids exactly, through sealing", () => {
    const model = new TreeModel(fileBlocksPacking)
    const odd = [
      { size: 5 * 2 ** 30, mtime: -86_400, uid: 2 ** 33 },
      { size: 2 ** 32, mtime: 2 ** 33, uid: 0 },
      { size: 2 ** 32 - 1, mtime: 2 ** 32 - 1, uid: 0xffffffff },
      { size: 12, mtime: 1.5, uid: 1000 }
    ]
    const inodes = odd.map(({ size, mtime, uid }, index) => {
      const inode = model.newInode("file", { ...meta, mtime, uid })
      model.setSize(inode, size)
      model.setContent(inode, FileBlocks.of(size, [{ start: 100 + index, length: 1 }]))
      model.attach(model.root, `f${index}`, inode)
      return inode
    })
    // Set again to ordinary values, a file leaves the maps: the arrays answer for it.
    model.setSize(inodes[3]!, 7)
    model.setMeta(inodes[3]!, { ...meta, mtime: 70, uid: 1 })
    listTree(model)
    model.seal()
    const expected = odd.map((entry, index) => (index === 3 ? { size: 7, mtime: 70, uid: 1 } : entry))
    expect(
      inodes.map((inode) => ({ size: model.size(inode), mtime: model.mtime(inode), uid: model.uid(inode) }))
    ).toEqual(expected)
    expect((model.content(inodes[0]!) as FileBlocks).size).toBe(5 * 2 ** 30)
  })
})
