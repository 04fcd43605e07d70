import * as fs from "node:fs"
import * as path from "node:path"
import { FileSystem, type Headers } from "@effect/platform"
import { Effect, Option } from "effect"
import { ClientPathRefused, FilesystemError } from "../domain/errors.js"
import { decodePeer, PEER_HEADER, type Peer, pathAccess } from "../domain/peer.js"
import { ClientFiles, type ClientReadError } from "../layers/client-files/client-files.js"
import { StatePaths } from "../layers/state/state-paths.js"
import { checkKernelMagic } from "../pipelines/kernel/inspect-kernel.js"
import type { KernelSource } from "../pipelines/pull/resolve-kernel.js"

/**
 * The host paths one request names, made safe for the daemon to open. For the daemon's own user
 * and root they are used as named; for anyone else each is copied, read with that client's rights
 * (ClientFiles), into a private intake dir under `<state>/tmp`, and the request goes on with the
 * copies, so a pipeline never opens a path a client chose. `release` removes the copies: when the
 * request answers, or, for one that begins an operation, when the operation ends.
 */
export interface ClientPaths {
  /** The request's peer, if it came over the socket (in-process callers, the web UI's own, have none). */
  readonly peer: Peer | undefined
  /** True when paths are used as named (the daemon's user, root, or an in-process caller). */
  readonly inPlace: boolean
  readonly file: (file: string) => Effect.Effect<string, ClientReadError>
  readonly tree: (dir: string) => Effect.Effect<string, ClientReadError>
  /** A kernel triple's paths, the kernel checked by its magic (named as the client named it). */
  readonly kernelSource: <S extends KernelSource | undefined>(
    source: S
  ) => Effect.Effect<S, ClientReadError | NotAKernelError>
  readonly catalog: (catalog: string | undefined) => Effect.Effect<string | undefined, ClientReadError>
  /** Refuses outright, naming `file`: for requests that would have the daemon read it later, not now. */
  readonly refuseUnlessInPlace: (file: string, why: string) => Effect.Effect<void, ClientPathRefused>
  /** An error that names a copy (`path`), made to name what the client gave instead. */
  readonly shownAs: <E>(error: E) => E
  /** The path the client gave for `copy` (itself when it is no copy). */
  readonly original: (copy: string) => string
  readonly release: Effect.Effect<void>
}

type NotAKernelError = Effect.Effect.Error<ReturnType<typeof checkKernelMagic>>

/** The peer stamped by the daemon's socket protocol; none for a request made inside the daemon. */
export const requestPeer = (headers: Headers.Headers): Option.Option<Peer> =>
  Option.fromNullable(decodePeer(headers[PEER_HEADER]))

export const clientPaths = Effect.fn("clientPaths")(function* (headers: Headers.Headers) {
  const files = yield* ClientFiles
  const statePaths = yield* StatePaths
  const platformFs = yield* FileSystem.FileSystem
  const peer = Option.getOrUndefined(requestPeer(headers))
  // No peer: the request was made inside the daemon (the web UI stamps its login's peer), which
  // acts with the daemon's rights anyway.
  const access = peer === undefined ? ({ _tag: "Direct" } as const) : pathAccess(peer, files.daemonUid)
  let intake: string | undefined
  let copies = 0
  const originals = new Map<string, string>()
  const original = (copy: string) => originals.get(copy) ?? copy

  const describe = peer === undefined ? Effect.succeed("the daemon") : files.describe(peer)
  const refuse = (file: string, reason: string) =>
    Effect.flatMap(describe, (user) => Effect.fail(new ClientPathRefused({ path: file, user, reason })))

  /** `<intake>/<n>/<basename>`: a copy keeps its name (a modules dir's name is its release). */
  const copyTarget = (file: string) =>
    Effect.try({
      try: () => {
        if (intake === undefined) {
          const dir = statePaths.tempPath(statePaths.tmp, "client")
          fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
          intake = dir
        }
        const slot = path.join(intake, String(copies++))
        fs.mkdirSync(slot)
        return path.join(slot, path.basename(file) || "file")
      },
      catch: (error) =>
        new FilesystemError({ path: statePaths.tmp, reason: `cannot make an intake dir: ${String(error)}` })
    })

  const admit = (
    file: string,
    copy: (peer: Peer, source: string, target: string) => Effect.Effect<void, ClientReadError>
  ) =>
    Effect.gen(function* () {
      if (access._tag === "Direct") return file
      if (access._tag === "Refused") return yield* refuse(file, access.reason)
      if (!path.isAbsolute(file)) return yield* new FilesystemError({ path: file, reason: "must be an absolute path" })
      const target = yield* copyTarget(file)
      yield* copy(access.peer, file, target)
      originals.set(target, file)
      return target
    })

  const file = (name: string) => admit(name, files.copyFileAs)
  const tree = (name: string) => admit(name, files.copyTreeAs)

  const kernelSource = <S extends KernelSource | undefined>(source: S) =>
    Effect.gen(function* () {
      if (source === undefined || source._tag !== "Paths" || access._tag === "Direct") return source
      const kernel = yield* file(source.kernel)
      yield* checkKernelMagic(kernel, source.kernel).pipe(Effect.provideService(FileSystem.FileSystem, platformFs))
      const initrd = source.initrd === undefined ? undefined : yield* file(source.initrd)
      const modules = source.modules === undefined ? undefined : yield* tree(source.modules)
      return { _tag: "Paths", kernel, initrd, modules } as S
    })

  return {
    peer,
    inPlace: access._tag === "Direct",
    file,
    tree,
    kernelSource,
    catalog: (catalog) => (catalog === undefined ? Effect.succeed(undefined) : file(catalog)),
    refuseUnlessInPlace: (name, why) =>
      access._tag === "Direct" ? Effect.void : refuse(name, access._tag === "Refused" ? access.reason : why),
    original,
    shownAs: <E>(error: E): E => {
      const named = error as { readonly path?: unknown; readonly constructor: new (fields: object) => E }
      if (typeof named.path !== "string" || !originals.has(named.path)) return error
      return new named.constructor({ ...named, path: original(named.path) })
    },
    release: Effect.sync(() => {
      if (intake !== undefined) fs.rmSync(intake, { recursive: true, force: true })
    })
  } satisfies ClientPaths
})
