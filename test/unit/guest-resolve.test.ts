/** resolvePath against an in-memory tree: chroot semantics without debugfs. */
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import type { GuestEntry } from "../../src/layers/guest/guest-fs.js"
import { type DirectoryReader, resolvePath } from "../../src/layers/guest/resolve.js"

type Node = { readonly dir: Record<string, Node> } | { readonly link: string } | { readonly file: true }

const tree: Node = {
  dir: {
    usr: { dir: { lib: { dir: { "os-release": { file: true } } }, sbin: { dir: {} } } },
    lib: { link: "usr/lib" },
    sbin: { link: "/usr/sbin" },
    etc: { link: "../../../../host-etc" },
    up: { link: "../../../usr/lib/os-release" },
    a: { link: "b" },
    b: { link: "/a" },
    file: { file: true }
  }
}

/** Inode numbers by walk order; the root is 2 as in ext4. */
const index = (() => {
  const byIno = new Map<number, Node>()
  const entries = new Map<number, Array<GuestEntry>>()
  let next = 3
  const visit = (node: Node, ino: number) => {
    byIno.set(ino, node)
    if (!("dir" in node)) return
    const list: Array<GuestEntry> = []
    for (const [name, child] of Object.entries(node.dir)) {
      const childIno = next++
      const kind = "dir" in child ? "directory" : "link" in child ? "symlink" : "file"
      list.push({
        ino: childIno,
        name,
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: "link" in child ? child.link.length : 0
      })
      visit(child, childIno)
    }
    entries.set(ino, list)
  }
  visit(tree, 2)
  return { byIno, entries }
})()

const reader: DirectoryReader<never> = {
  list: (ino) => Effect.sync(() => index.entries.get(ino) ?? []),
  readLink: (entry) => Effect.sync(() => (index.byIno.get(entry.ino) as { link: string }).link)
}
const resolve = (path: string, followFinal = true) =>
  Effect.runSync(Effect.either(resolvePath(reader, "img", path, followFinal)))
const where = (path: string, followFinal = true) => {
  const result = resolve(path, followFinal)
  if (result._tag === "Left") return `error: ${result.left.reason}`
  const r = result.right
  return r._tag === "Found"
    ? `${r.parentPath === "/" ? "" : r.parentPath}/${r.name} (${r.entry.kind})`
    : `missing ${r.name} in ${r.parentPath}${r.remaining.length ? ` then ${r.remaining.join("/")}` : ""}${r.viaLink ? " via link" : ""}`
}

describe("resolvePath", () => {
  it("follows relative and absolute links inside the image", () => {
    expect(where("/lib/os-release")).toBe("/usr/lib/os-release (file)")
    expect(where("/sbin")).toBe("/usr/sbin (directory)")
    expect(where("/sbin", false)).toBe("/sbin (symlink)")
    expect(where("lib/../lib/./os-release")).toBe("/usr/lib/os-release (file)")
    expect(where("/lib/..")).toBe("/usr (directory)")
  })

  it("never climbs above the root", () => {
    expect(where("/../../usr/lib")).toBe("/usr/lib (directory)")
    expect(where("/up")).toBe("/usr/lib/os-release (file)")
    expect(where("/etc/passwd")).toBe("missing host-etc in / then passwd via link")
    expect(where("/..")).toBe("/ (directory)")
  })

  it("reports what is missing, and fails for loops and files used as directories", () => {
    expect(where("/usr/sbin/new")).toBe("missing new in /usr/sbin")
    expect(where("/usr/x/y/z")).toBe("missing x in /usr then y/z")
    expect(where("/a/x")).toBe("error: too many levels of symbolic links (a loop?)")
    expect(where("/a", false)).toBe("/a (symlink)")
    expect(where("/file/x")).toBe("error: /file is not a directory")
    expect(where("/usr/missing/../lib")).toBe("error: /usr/missing does not exist (and .. cannot pass through it)")
  })
})
