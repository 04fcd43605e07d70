import { describe, expect, it } from "@effect/vitest"
import { attach, blankInode, makeRoot, toEntries } from "../../src/layers/rootfs/tree-model.js"

const file = () => blankInode("file", 0o644)

describe("toEntries", () => {
  it("orders siblings by the bytes of their UTF-8 names", () => {
    const names = ["b", "a", "Z", "é", "\u{1F600}", "\uFFFD", "a.b", "a-b", "文件"]
    for (const withEmoji of [true, false]) {
      const root = makeRoot()
      for (const name of names.filter((candidate) => withEmoji || candidate !== "\u{1F600}")) attach(root, name, file())
      const paths = toEntries(root).map((entry) => entry.path)
      const expected = [...paths.slice(1)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
      expect(paths).toEqual(["", ...expected])
    }
    // U+FFFD (EF BF BD) sorts before U+1F600 (F0 ...) in bytes, after it in UTF-16 units.
    const root = makeRoot()
    attach(root, "\uFFFD", file())
    attach(root, "\u{1F600}", file())
    expect(toEntries(root).map((entry) => entry.path)).toEqual(["", "\uFFFD", "\u{1F600}"])
  })
})
