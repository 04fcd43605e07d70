/**
 * Layers written to escape. Each one either fails with UnsafeLayerEntry or lands inside the tree;
 * in every case the sentinel directory next to the state root, which the layers aim at, must be
 * byte for byte what it was, and the host's files must never gain a hard link.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { LayerEntrySpec } from "../../support/layers.js"
import { layerFromTar } from "../../support/layers.js"
import {
  endOfArchive,
  entryAt,
  flattenError,
  flattenWith,
  layerFile,
  paths,
  paxHeader,
  rawFile,
  rawHeader,
  type Sandbox,
  sandbox,
  snapshot,
  specLayer,
  tmpListing
} from "./harness.js"

/** Runs `body` and then checks nothing outside the tree moved. */
const guarded = <A, E>(body: (box: Sandbox) => Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const box = yield* sandbox
    const before = yield* Effect.promise(() => snapshot(box.outside))
    yield* body(box)
    expect(yield* Effect.promise(() => snapshot(box.outside))).toEqual(before)
    expect((yield* Effect.promise(() => fs.stat(path.join(box.outside, "secret")))).nlink).toBe(1)
    expect((yield* Effect.promise(() => fs.readdir(box.root))).sort()).toEqual(["blobs", "outside", "state"])
    expect(yield* Effect.promise(() => fs.readdir(box.state))).toEqual(["tmp"])
    expect(yield* tmpListing(box)).toEqual([])
  })

const rejects = (box: Sandbox, entries: ReadonlyArray<LayerEntrySpec>, reason: RegExp) =>
  Effect.gen(function* () {
    const layer = yield* specLayer(box, entries)
    const error = yield* flattenError(box, [layer])
    expect(error._tag).toBe("UnsafeLayerEntry")
    expect(error.message).toMatch(reason)
  })

describe("RootfsBuilder.flatten: hostile layers", () => {
  it.scopedLive("refuses names that climb above the root", () =>
    guarded((box) =>
      Effect.gen(function* () {
        yield* rejects(box, [{ type: "file", name: "../escape", content: "x" }], /climbs above the root/)
        yield* rejects(box, [{ type: "file", name: "a/../../x", content: "x" }], /climbs above the root/)
        yield* rejects(box, [{ type: "file", name: "./../../../outside/pwned", content: "x" }], /climbs/)
        yield* rejects(box, [{ type: "directory", name: "../../outside/newdir/" }], /climbs/)
        yield* rejects(box, [{ type: "symlink", name: "../link", target: "/" }], /climbs/)
      })
    )
  )

  it.scopedLive("neutralises absolute names to the root and collapses . and ..", () =>
    guarded((box) =>
      Effect.gen(function* () {
        const layer = yield* specLayer(box, [
          { type: "file", name: "/abs/path", content: "abs" },
          { type: "file", name: `${box.outside}/secret`, content: "mine" },
          { type: "file", name: "//./x/./y/../z", content: "z" }
        ])
        yield* flattenWith(box, [layer], (tree) =>
          Effect.promise(async () => {
            expect(await fs.readFile(path.join(tree.dir, "abs/path"), "utf8")).toBe("abs")
            const mirrored = path.join(tree.dir, box.outside, "secret")
            expect(await fs.readFile(mirrored, "utf8")).toBe("mine")
            expect(entryAt(tree.entries, `${box.outside.slice(1)}/secret`).size).toBe(4)
            expect(await fs.readFile(path.join(tree.dir, "x/z"), "utf8")).toBe("z")
            expect(tree.entries.some((entry) => entry.path === "x/y")).toBe(false)
          })
        )
      })
    )
  )

  it.scopedLive("follows symlinked parents only inside the root, like a chroot", () =>
    guarded((box) =>
      Effect.gen(function* () {
        const lower = yield* specLayer(box, [
          { type: "symlink", name: "evil", target: "/" },
          { type: "symlink", name: "up", target: "../../.." },
          { type: "symlink", name: "host", target: box.outside },
          { type: "directory", name: "d/" },
          { type: "symlink", name: "d/sideways", target: "../../../../outside" }
        ])
        const upper = yield* specLayer(box, [
          { type: "file", name: "evil/etc/x", content: "via evil" },
          { type: "file", name: "up/outside/pwned", content: "via up" },
          { type: "file", name: "host/secret", content: "via host" },
          { type: "file", name: "d/sideways/pwned2", content: "via sideways" },
          { type: "directory", name: "evil/evil/evil/made/" }
        ])
        yield* flattenWith(box, [lower, upper], (tree) =>
          Effect.promise(async () => {
            const read = (relative: string) => fs.readFile(path.join(tree.dir, relative), "utf8")
            expect(await read("etc/x")).toBe("via evil")
            expect(await read("outside/pwned")).toBe("via up")
            expect(await read(`${box.outside.slice(1)}/secret`)).toBe("via host")
            expect(await read("outside/pwned2")).toBe("via sideways")
            expect((await fs.lstat(path.join(tree.dir, "made"))).isDirectory()).toBe(true)
            // The symlinks themselves are untouched and verbatim.
            expect(entryAt(tree.entries, "evil")).toMatchObject({ type: "symlink", linkTarget: "/" })
            expect(await fs.readlink(path.join(tree.dir, "up"))).toBe("../../..")
            expect(entryAt(tree.entries, "etc")).toMatchObject({ type: "directory", mode: 0o755, uid: 0 })
          })
        )
      })
    )
  )

  it.scopedLive("replaces a symlink at an entry's own path instead of writing through it", () =>
    guarded((box) =>
      Effect.gen(function* () {
        const lower = yield* specLayer(box, [
          { type: "symlink", name: "victim", target: `${box.outside}/secret` },
          { type: "symlink", name: "victimdir", target: box.outside },
          { type: "symlink", name: "rel", target: "../../../outside/secret" }
        ])
        const upper = yield* specLayer(box, [
          { type: "file", name: "victim", content: "overwritten?" },
          { type: "directory", name: "victimdir/", mode: 0o777 },
          { type: "char", name: "rel", major: 1, minor: 1 }
        ])
        yield* flattenWith(box, [lower, upper], (tree) =>
          Effect.sync(() => {
            expect(entryAt(tree.entries, "victim")).toMatchObject({ type: "file", size: 12 })
            expect(entryAt(tree.entries, "victimdir")).toMatchObject({ type: "directory", mode: 0o777 })
            expect(entryAt(tree.entries, "rel")).toMatchObject({ type: "char" })
          })
        )
      })
    )
  )

  it.scopedLive("never hardlinks host files", () =>
    guarded((box) =>
      Effect.gen(function* () {
        yield* rejects(box, [{ type: "hardlink", name: "stolen", target: "../../outside/secret" }], /climbs/)
        yield* rejects(box, [{ type: "hardlink", name: "stolen", target: `${box.outside}/secret` }], /does not exist/)
        yield* rejects(
          box,
          [
            { type: "symlink", name: "hl", target: box.outside },
            { type: "hardlink", name: "stolen", target: "hl/secret" }
          ],
          /does not exist/
        )
        yield* rejects(
          box,
          [
            { type: "symlink", name: "hl", target: "../../../outside" },
            { type: "hardlink", name: "stolen", target: "hl/secret" }
          ],
          /does not exist/
        )
        // The same absolute name does resolve when the tree has it: to the tree's own file.
        const layer = yield* specLayer(box, [
          { type: "file", name: `${box.outside}/secret`, content: "tree copy" },
          { type: "hardlink", name: "linked", target: `${box.outside}/secret` }
        ])
        yield* flattenWith(box, [layer], (tree) =>
          Effect.promise(async () => {
            const linked = await fs.stat(path.join(tree.dir, "linked"))
            const host = await fs.stat(path.join(box.outside, "secret"))
            expect(linked.ino).not.toBe(host.ino)
            expect(linked.nlink).toBe(2)
            expect(await fs.readFile(path.join(tree.dir, "linked"), "utf8")).toBe("tree copy")
            // "linked" sorts first, so it is the primary name.
            expect(entryAt(tree.entries, `${box.outside.slice(1)}/secret`).hardlinkTo).toBe("linked")
          })
        )
      })
    )
  )

  it.scopedLive("hardlinking a symlink links the symlink itself, never what it points at", () =>
    guarded((box) =>
      Effect.gen(function* () {
        const layer = yield* specLayer(box, [
          { type: "symlink", name: "s", target: `${box.outside}/secret` },
          { type: "hardlink", name: "s2", target: "s" }
        ])
        yield* flattenWith(box, [layer], (tree) =>
          Effect.promise(async () => {
            expect(entryAt(tree.entries, "s2")).toMatchObject({ type: "symlink", hardlinkTo: "s" })
            const stat = await fs.lstat(path.join(tree.dir, "s2"))
            expect(stat.isSymbolicLink()).toBe(true)
            expect(stat.ino).toBe((await fs.lstat(path.join(tree.dir, "s"))).ino)
          })
        )
      })
    )
  )

  it.scopedLive("stops symlink loops and refuses files used as directories", () =>
    guarded((box) =>
      Effect.gen(function* () {
        yield* rejects(
          box,
          [
            { type: "symlink", name: "a", target: "b" },
            { type: "symlink", name: "b", target: "a" },
            { type: "file", name: "a/x", content: "x" }
          ],
          /too many levels of symbolic links/
        )
        yield* rejects(
          box,
          [
            { type: "symlink", name: "self", target: "/self/deeper" },
            { type: "directory", name: "self/y/" }
          ],
          /too many levels/
        )
        yield* rejects(
          box,
          [
            { type: "symlink", name: "loop", target: "loop" },
            { type: "hardlink", name: "h", target: "loop/x" }
          ],
          /too many levels/
        )
        // Few hops, but each through a long target: the work per name is bounded too.
        yield* rejects(
          box,
          [
            { type: "symlink", name: "s", target: "./".repeat(1500) },
            { type: "file", name: `${"s/".repeat(12)}x`, content: "x" }
          ],
          /path resolution too long/
        )
        yield* rejects(
          box,
          [
            { type: "file", name: "f", content: "f" },
            { type: "file", name: "f/x", content: "x" }
          ],
          /not a directory/
        )
        // An entry naming the root that is not a directory is ignored, as containerd ignores it.
        const rootAsFile = yield* specLayer(box, [{ type: "file", name: "./", content: "root as file" }])
        yield* flattenWith(box, [rootAsFile], (tree) =>
          Effect.sync(() => expect(tree.entries.map((entry) => [entry.path, entry.type])).toEqual([["", "directory"]]))
        )
      })
    )
  )

  it.scopedLive("refuses whiteouts of . and .., and NUL bytes in names", () =>
    guarded((box) =>
      Effect.gen(function* () {
        yield* rejects(
          box,
          [
            { type: "directory", name: "d/" },
            { type: "file", name: "d/.wh.." }
          ],
          /whiteout/
        )
        yield* rejects(box, [{ type: "file", name: "d/.wh..." }], /whiteout/)
        yield* rejects(box, [{ type: "file", name: ".wh." }], /whiteout/)
        const nul = layerFromTar(
          Buffer.concat([paxHeader([["path", "a\0/../../../x"]]), rawFile("placeholder", "x"), endOfArchive]),
          "none"
        )
        // A NUL in a PAX name is malformed tar, refused by the reader as Go refuses it.
        const error = yield* flattenError(box, [yield* layerFile(box, nul)])
        expect(error._tag).toBe("InvalidLayer")
        expect(error.message).toMatch(/NUL/)
        const nulTarget = layerFromTar(
          Buffer.concat([
            paxHeader([["linkpath", "/etc\0passwd"]]),
            rawHeader({ name: "s", type: "2", linkname: "x" }),
            endOfArchive
          ]),
          "none"
        )
        expect((yield* flattenError(box, [yield* layerFile(box, nulTarget)]))._tag).toBe("InvalidLayer")
      })
    )
  )

  it.scopedLive("whiteouts through symlinked parents act inside the root", () =>
    guarded((box) =>
      Effect.gen(function* () {
        const lower = yield* specLayer(box, [
          { type: "symlink", name: "l", target: box.outside },
          { type: "directory", name: "keep/" },
          { type: "file", name: "keep/me", content: "me" }
        ])
        const upper = yield* specLayer(box, [
          { type: "file", name: "l/.wh.secret" },
          { type: "file", name: "l/.wh..wh..opq" },
          { type: "symlink", name: "root", target: "../../.." },
          { type: "file", name: "root/keep/.wh.me" }
        ])
        yield* flattenWith(box, [lower, upper], (tree) =>
          Effect.sync(() => expect(paths(tree.entries)).toEqual(["", "keep", "l", "root"]))
        )
      })
    )
  )
})
