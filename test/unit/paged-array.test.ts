import { describe, expect, it } from "@effect/vitest"
import { PagedArray } from "../../src/layers/rootfs/paged-array.js"

describe("PagedArray", () => {
  it("keeps values across page boundaries as its element type stores them, new slots reading 0", () => {
    const array = new PagedArray((length) => new Uint32Array(length))
    const indexes = [0, 1, 65_535, 65_536, 65_537, 200_000]
    array.ensure(200_001)
    expect(indexes.map((index) => array.get(index))).toEqual(indexes.map(() => 0))
    for (const index of indexes) array.set(index, index * 3 + 1)
    expect(indexes.map((index) => array.get(index))).toEqual(indexes.map((index) => index * 3 + 1))
    array.set(7, 2 ** 32 + 5)
    expect(array.get(7)).toBe(5)
    array.clear()
    expect(() => array.get(0)).toThrow()
  })
})
