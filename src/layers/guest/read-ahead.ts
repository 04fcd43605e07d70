import type { CommandExecutor } from "@effect/platform"
import { Effect, Either } from "effect"
import type { Ext4Error } from "../../domain/errors.js"
import {
  expressible,
  type GuestEntry,
  type InodeStat,
  inodeSpec,
  lineFits,
  parseListingOutput,
  parseStat,
  quote,
  type ReadCommand,
  readBatch
} from "./debugfs.js"
import { childPath, type DirectoryReader, type PendingPath, resolvePath } from "./resolve.js"

/**
 * What reads of one image have learned, by inode. Only the image's own content goes in (keyed by
 * the inode it came from, however debugfs found it), so it is valid until the image is written.
 */
export interface ImageCache {
  readonly listings: Map<number, ReadonlyArray<GuestEntry>>
  readonly links: Map<number, string>
  readonly contents: Map<number, Uint8Array>
  /** Requests the read-ahead made already: it never repeats one, so it always ends. */
  readonly asked: Set<string>
}

export const emptyCache = (): ImageCache => ({
  listings: new Map(),
  links: new Map(),
  contents: new Map(),
  asked: new Set()
})

/** After a write: everything learned may be stale. */
export const forget = (cache: ImageCache): void => {
  cache.listings.clear()
  cache.links.clear()
  cache.contents.clear()
  cache.asked.clear()
}

/** A path to resolve ahead of time; with `content`, the regular file it ends on is read too. */
export interface WantedPath {
  readonly path: string
  readonly followFinal: boolean
  readonly content?: boolean | undefined
}

type Need =
  | { readonly _tag: "List"; readonly ino: number; readonly pending: PendingPath | undefined }
  | { readonly _tag: "Link"; readonly entry: GuestEntry; readonly pending: PendingPath | undefined }
  | { readonly _tag: "Content"; readonly entry: GuestEntry }

class Unknown {
  constructor(readonly need: Need) {}
}

/** The cache alone: a lookup that needs more stops with what it needs. */
const cacheOnly = (cache: ImageCache): DirectoryReader<Unknown> => ({
  list: (ino, pending) => {
    const known = cache.listings.get(ino)
    return known !== undefined ? Effect.succeed(known) : Effect.fail(new Unknown({ _tag: "List", ino, pending }))
  },
  readLink: (entry, pending) => {
    const known = cache.links.get(entry.ino)
    return known !== undefined ? Effect.succeed(known) : Effect.fail(new Unknown({ _tag: "Link", entry, pending }))
  }
})

/** ext4 keeps a symlink's target in the inode up to 59 bytes; longer ones live in a block. */
const FAST_LINK_MAX = 59

const byteLength = (text: string) => Buffer.byteLength(text, "utf8")

interface Planned {
  readonly command: ReadCommand
  readonly key: string
  readonly use: (answer: string | Uint8Array) => void
}

/**
 * One round's requests: what each stopped lookup needs, by inode (so every round makes progress),
 * and, guessed from the path still to walk, the listings and stats of every directory and link
 * on it, by path: debugfs follows the links on the way itself, which is usually where the image
 * leads too, and whatever it finds is kept under the inode it came from.
 */
const plan = (cache: ImageCache, needs: ReadonlyArray<readonly [Need, boolean]>): Array<Planned> => {
  const planned: Array<Planned> = []
  const stats = new Map<string, InodeStat>()
  const add = (command: ReadCommand, use: Planned["use"]) => {
    const key = `${command._tag} ${command.target}`
    if (cache.asked.has(key) || planned.some((known) => known.key === key)) return
    planned.push({ command, key, use })
  }
  const text = (answer: string | Uint8Array) =>
    typeof answer === "string" ? answer : Buffer.from(answer).toString("utf8")
  const keepListing = (answer: string | Uint8Array) => {
    const listing = parseListingOutput(text(answer))
    if (listing !== undefined) cache.listings.set(listing.ino, listing.entries)
  }
  const keepStat = (target?: string) => (answer: string | Uint8Array) => {
    const stat = parseStat(text(answer))
    if (stat === undefined) return
    if (target !== undefined) stats.set(target, stat)
    if (stat.type === "symlink" && stat.fastLink !== undefined && byteLength(stat.fastLink) === stat.size)
      cache.links.set(stat.ino, stat.fastLink)
  }
  const ahead = (pending: PendingPath | undefined, content: boolean) => {
    if (pending === undefined) return
    let target = pending.dir
    pending.rest.forEach((name, index) => {
      target = childPath(target, name)
      // Room for the dump's host path on the line too.
      if (!expressible(target) || !lineFits(`${target}${" ".repeat(512)}`)) return
      add({ _tag: "List", target: quote(`${target}/.`) }, keepListing)
      add({ _tag: "Stat", target: quote(target) }, keepStat(quote(target)))
      // A usrmerged image's /sbin, /lib and /bin lead into /usr, which a lookup through them
      // lists first: their `..` is it.
      if (pending.dir === "/" && index === 0) add({ _tag: "List", target: quote(`${target}/..`) }, keepListing)
      if (content && index === pending.rest.length - 1) {
        add({ _tag: "Dump", target: quote(target) }, (answer) => {
          const stat = stats.get(quote(target))
          if (stat?.type === "regular" && typeof answer !== "string" && answer.length === stat.size)
            cache.contents.set(stat.ino, answer)
        })
      }
    })
  }
  for (const [need, content] of needs) {
    if (need._tag === "List") {
      add({ _tag: "List", target: inodeSpec(need.ino) }, keepListing)
      ahead(need.pending, content)
    } else if (need._tag === "Link") {
      const { entry } = need
      const keepTarget = (answer: string | Uint8Array) => {
        if (typeof answer !== "string" && answer.length === entry.size) cache.links.set(entry.ino, text(answer))
      }
      if (entry.size <= FAST_LINK_MAX) add({ _tag: "Stat", target: inodeSpec(entry.ino) }, keepStat())
      else add({ _tag: "Dump", target: inodeSpec(entry.ino) }, keepTarget)
      // By path, debugfs follows the link itself: its target directory comes along.
      ahead(need.pending, content)
    } else {
      const { entry } = need
      add({ _tag: "Dump", target: inodeSpec(entry.ino) }, (answer) => {
        if (typeof answer !== "string" && answer.length === entry.size) cache.contents.set(entry.ino, answer)
      })
    }
  }
  return planned
}

const MAX_ROUNDS = 8

/**
 * Fills the cache for `wanted` in as few debugfs runs as it can (typically one or two, against
 * one per directory and link on each path when looked up one by one). It only fetches: lookups
 * still resolve through the cache with resolvePath afterwards, and anything it could not learn
 * is read then, one request at a time, with that request's own error.
 */
export const readAhead = (
  image: string,
  cache: ImageCache,
  wanted: ReadonlyArray<WantedPath>
): Effect.Effect<void, Ext4Error, CommandExecutor.CommandExecutor> =>
  Effect.gen(function* () {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const needs: Array<readonly [Need, boolean]> = []
      for (const want of wanted) {
        const resolved = yield* Effect.either(resolvePath(cacheOnly(cache), image, want.path, want.followFinal))
        const content = want.content === true
        if (Either.isLeft(resolved)) {
          if (resolved.left instanceof Unknown) needs.push([resolved.left.need, content])
        } else if (
          content &&
          resolved.right._tag === "Found" &&
          resolved.right.entry.kind === "file" &&
          !cache.contents.has(resolved.right.entry.ino)
        ) {
          needs.push([{ _tag: "Content", entry: resolved.right.entry }, content])
        }
      }
      const planned = plan(cache, needs)
      if (planned.length === 0) return
      for (const request of planned) cache.asked.add(request.key)
      const answers = yield* readBatch(
        image,
        planned.map((request) => request.command)
      )
      answers.forEach((answer, index) => {
        if (answer !== undefined) planned[index]!.use(answer)
      })
    }
  })
