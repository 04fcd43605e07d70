/**
 * A deterministic synthetic file tree, generated as layer entries one at a time (never held whole):
 * directories nested deep like node_modules or a big source tree, mostly small files of mixed sizes
 * (text that compresses like source code, some incompressible "binary" files), a few symlinks,
 * hardlinks and user xattrs, mixed owners and modes. The same options give the same entries, byte for
 * byte, on any machine.
 */

import type { LayerEntrySpec } from "../test/support/layers.js"

export interface SyntheticTreeOptions {
  readonly seed: number
  /** Relative path the tree lives under, e.g. "srv/tree" (its parents are written too). */
  readonly root: string
  /** Directories below `root`. */
  readonly directories: number
  /** Non-directory entries: regular files, symlinks and hardlinks. */
  readonly files: number
  /** Sum of the regular files' sizes (hardlinks not counted again), give or take a file. */
  readonly bytes: number
  /** Deepest directory level below `root`. */
  readonly maxDepth?: number
}

/** mulberry32: small, fast, and the same everywhere. */
export const prng = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const pick = <A>(random: () => number, items: ReadonlyArray<A>): A => items[Math.floor(random() * items.length)]!

const WORDS =
  "const let return function import export from default class extends async await if else for while of in new this true false null undefined value result error options config module require type interface string number boolean array object map set promise resolve reject index length push slice test describe expect should render props state handler event buffer stream read write path file dir name size data"
    .split(" ")
    .concat(["=", "=>", "{", "}", "(", ")", ";", ",", ".", "\n", "\n  ", "\n    ", "// ", "0", "1", "42"])

const DIR_NAMES = [
  "src",
  "lib",
  "dist",
  "test",
  "node_modules",
  "core",
  "utils",
  "internal",
  "esm",
  "cjs",
  "types",
  "components",
  "fixtures",
  "vendor",
  "build",
  "pkg"
]
const FILE_STEMS = [
  "index",
  "main",
  "util",
  "types",
  "helpers",
  "client",
  "server",
  "parse",
  "render",
  "readme",
  "a",
  "b"
]
const TEXT_EXTS = [".js", ".js", ".ts", ".d.ts", ".json", ".map", ".md", ".c", ".h", ".py", ".txt"]
const BINARY_EXTS = [".png", ".wasm", ".node", ".gz", ".woff2"]

/** 2 MiB of pseudo source text and 2 MiB of noise that file contents are sliced from. */
const POOL_BYTES = 2 * 1024 * 1024
const pools = (seed: number) => {
  const random = prng(seed ^ 0x5eed)
  const text = Buffer.alloc(POOL_BYTES)
  let at = 0
  while (at < POOL_BYTES) {
    const word = pick(random, WORDS)
    at += text.write(random() < 0.8 ? `${word} ` : word, at)
  }
  const noise = Buffer.alloc(POOL_BYTES)
  for (let i = 0; i < POOL_BYTES; i += 4) noise.writeUInt32LE(Math.floor(random() * 4294967296), i)
  return { text, noise }
}

/** Largest single file; the pools are bigger, so any slice fits. */
const MAX_FILE = 1024 * 1024

/**
 * Sizes that look like a source tree: mostly a few hundred bytes to a few KiB (log-uniform), some
 * empty, a thin tail up to 1 MiB, then scaled so they add up to exactly `total`.
 */
const fileSizes = (random: () => number, count: number, total: number) => {
  const sizes = new Float64Array(count)
  let sum = 0
  for (let i = 0; i < count; i++) {
    const u = random()
    const size = u < 0.02 ? 0 : u < 0.995 ? 2 ** (4 + random() * 10) : 2 ** (14 + random() * 6)
    sizes[i] = size
    sum += size
  }
  const scale = sum === 0 ? 0 : total / sum
  const out = new Uint32Array(count)
  let assigned = 0
  for (let i = 0; i < count; i++) {
    out[i] = Math.min(MAX_FILE, Math.floor(sizes[i]! * scale))
    assigned += out[i]!
  }
  // Rounding (and the clamp) leaves a remainder: spread it over the files from the start.
  for (let i = 0; assigned < total && count > 0; i = (i + 1) % count) {
    const add = Math.min(total - assigned, MAX_FILE - out[i]!)
    out[i] = out[i]! + add
    assigned += add
  }
  return out
}

interface Directory {
  readonly path: string
  readonly depth: number
  readonly children: Array<number>
  files: number
  readonly uid: number
}

/** The directory tree: each directory's parent is its predecessor most of the time, so chains go deep. */
const directoryTree = (random: () => number, options: SyntheticTreeOptions) => {
  const maxDepth = options.maxDepth ?? 24
  const dirs: Array<Directory> = [{ path: options.root, depth: 0, children: [], files: 0, uid: 0 }]
  const names = new Map<number, Set<string>>()
  for (let i = 1; i <= options.directories; i++) {
    let parent = random() < 0.55 ? i - 1 : Math.floor(random() * i)
    while (dirs[parent]!.depth >= maxDepth) parent = Math.floor(random() * i)
    const taken = names.get(parent) ?? new Set<string>()
    names.set(parent, taken)
    let name = pick(random, DIR_NAMES)
    if (taken.has(name) || random() < 0.5) name = `${name === "node_modules" ? "pkg" : name}-${i.toString(36)}`
    taken.add(name)
    const owner = dirs[parent]!.uid !== 0 || random() < 0.03 ? 1000 : 0
    dirs.push({
      path: `${dirs[parent]!.path}/${name}`,
      depth: dirs[parent]!.depth + 1,
      children: [],
      files: 0,
      uid: owner
    })
    dirs[parent]!.children.push(i)
  }
  // Files per directory: heavy-tailed weights, the way a few directories hold most files.
  const weights = dirs.map(() => 1 / (random() + 0.01))
  const cumulative = new Float64Array(weights.length)
  weights.reduce((sum, weight, i) => (cumulative[i] = sum + weight), 0)
  const totalWeight = cumulative[cumulative.length - 1]!
  for (let f = 0; f < options.files; f++) {
    const target = random() * totalWeight
    let lo = 0
    let hi = cumulative.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cumulative[mid]! < target) lo = mid + 1
      else hi = mid
    }
    dirs[lo]!.files++
  }
  return dirs
}

const FILE_MODES = [0o644, 0o644, 0o644, 0o644, 0o644, 0o644, 0o644, 0o644, 0o755, 0o755, 0o755, 0o600, 0o444]
const MTIME = 1_700_000_000

/** The tree's entries in tar order: each directory, then its files, then its subdirectories. */
export function* syntheticTree(options: SyntheticTreeOptions): Generator<LayerEntrySpec> {
  const structure = prng(options.seed)
  const dirs = directoryTree(structure, options)
  const sizes = fileSizes(prng(options.seed + 1), options.files, options.bytes)
  const random = prng(options.seed + 2)
  const { text, noise } = pools(options.seed)
  const parts = options.root.split("/")
  for (let i = 1; i < parts.length; i++) {
    yield { type: "directory", name: `${parts.slice(0, i).join("/")}/`, mode: 0o755, mtime: MTIME }
  }
  // Recent regular files, for hardlinks (to a file already written) and symlinks (to a neighbour).
  const recent: Array<{ readonly name: string; readonly mode: number; readonly uid: number }> = []
  let fileIndex = 0
  // The sizes drawn for symlinks and hardlinks, handed on to the regular files after them (each
  // taking at most its own size again), so the total stays on target.
  let owed = 0
  const stack = [0]
  while (stack.length > 0) {
    const dir = dirs[stack.pop()!]!
    yield {
      type: "directory",
      name: `${dir.path}/`,
      mode: dir.uid !== 0 && random() < 0.1 ? 0o700 : 0o755,
      uid: dir.uid,
      gid: dir.uid,
      mtime: MTIME + Math.floor(random() * 1e6)
    }
    for (let n = 0; n < dir.files; n++, fileIndex++) {
      const common = {
        uid: dir.uid,
        gid: dir.uid,
        mtime: MTIME + Math.floor(random() * 1e7)
      }
      const roll = random()
      const binary = roll < 0.08
      const ext = binary ? pick(random, BINARY_EXTS) : pick(random, TEXT_EXTS)
      const name = `${dir.path}/${pick(random, FILE_STEMS)}-${n}${ext}`
      if (roll > 0.97 && recent.length > 0) owed += sizes[fileIndex]!
      if (roll > 0.98 && recent.length > 0) {
        const target = pick(random, recent).name
        // Relative to a neighbour, absolute, or dangling: all three occur in real trees.
        const kind = random()
        const linkTarget =
          kind < 0.6 ? relative(dir.path, target) : kind < 0.85 ? `/${target}` : `./missing-${fileIndex}.js`
        yield { ...common, type: "symlink", name, target: linkTarget, mode: 0o777 }
        continue
      }
      if (roll > 0.97 && recent.length > 0) {
        // The target's own mode and owner, as tar writers put them: it is one inode. (Extractors
        // disagree on a link header that says otherwise: Docker's applies it, umoci's ignores it.)
        const target = pick(random, recent)
        yield {
          ...common,
          type: "hardlink",
          name,
          target: target.name,
          mode: target.mode,
          uid: target.uid,
          gid: target.uid
        }
        continue
      }
      const extra = Math.min(owed, sizes[fileIndex]!, MAX_FILE - sizes[fileIndex]!)
      owed -= extra
      const size = sizes[fileIndex]! + extra
      const content = Buffer.allocUnsafe(size)
      const pool = binary ? noise : text
      const offset = Math.floor(random() * (POOL_BYTES - size))
      pool.copy(content, 0, offset, offset + size)
      // A distinct first line, so no two files share contents by accident.
      content.write(binary ? `${fileIndex}` : `/* ${fileIndex} */\n`, 0)
      const xattrs = random() < 0.005 ? { "user.origin": `synthetic ${fileIndex}` } : undefined
      const mode = pick(random, FILE_MODES)
      yield { ...common, type: "file", name, content, mode, ...(xattrs ? { xattrs } : {}) }
      recent.push({ name, mode, uid: dir.uid })
      if (recent.length > 64) recent.shift()
    }
    // Reversed so the first child comes off the stack first.
    for (let c = dir.children.length - 1; c >= 0; c--) stack.push(dir.children[c]!)
  }
}

const relative = (fromDir: string, to: string) => {
  const from = fromDir.split("/")
  const target = to.split("/")
  let common = 0
  while (common < from.length && common < target.length - 1 && from[common] === target[common]) common++
  return [...from.slice(common).map(() => ".."), ...target.slice(common)].join("/")
}
