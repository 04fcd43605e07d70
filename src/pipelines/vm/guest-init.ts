import { Effect } from "effect"
import { GuestPathError } from "../../domain/errors.js"
import type { GuestEntry } from "../../layers/guest/guest-fs.js"

/**
 * What the image's config says to run (OCI `config`: Entrypoint, Cmd, Env, WorkingDir, User); the
 * image row's `runtime` (ImageRuntime) is one, with empty strings and arrays for what is unset.
 */
export interface ImageRunConfig {
  readonly entrypoint?: ReadonlyArray<string> | undefined
  readonly cmd?: ReadonlyArray<string> | undefined
  readonly env?: ReadonlyArray<string> | undefined
  readonly workingDir?: string | undefined
  readonly user?: string | undefined
}

export type InitChoice =
  /** The image's own /sbin/init (systemd, sysvinit, ...): banger adds only a ready notice. */
  | { readonly _tag: "ImageInit"; readonly systemd: boolean }
  /** banger's init under /.banger/, booted with `init=/.banger/init`. */
  | { readonly _tag: "BuiltinInit" }

export interface InitFacts {
  /** /sbin/init resolved inside the image (symlinks followed), if it exists. */
  readonly sbinInit: GuestEntry | undefined
  /** Its canonical path inside the image. */
  readonly sbinInitPath: string | undefined
  readonly hasInittab: boolean
}

/**
 * An image boots its own init when /sbin/init, resolved inside the image, is a non-empty regular
 * file someone may execute, and is an init system: systemd, or an init driven by /etc/inittab
 * (sysvinit). Anything else gets banger's: no /sbin/init (debian:bookworm, distroless), a dangling
 * or empty one, and busybox's (alpine links /sbin/init to busybox but ships no services to run).
 */
export const chooseInit = (facts: InitFacts): InitChoice => {
  const { sbinInit, sbinInitPath } = facts
  const executable =
    sbinInit !== undefined && sbinInit.kind === "file" && sbinInit.size > 0 && (sbinInit.mode & 0o111) !== 0
  const base = sbinInitPath?.split("/").at(-1) ?? ""
  if (!executable || base === "busybox") return { _tag: "BuiltinInit" }
  if (base === "systemd") return { _tag: "ImageInit", systemd: true }
  return facts.hasInittab ? { _tag: "ImageInit", systemd: false } : { _tag: "BuiltinInit" }
}

/** Entrypoint then Cmd, as Docker combines them. */
export const commandLine = (config: ImageRunConfig): ReadonlyArray<string> => [
  ...(config.entrypoint ?? []),
  ...(config.cmd ?? [])
]

export interface GuestUser {
  readonly uid: number
  readonly gid: number
  readonly home: string
}

interface PasswdEntry {
  readonly name: string
  readonly uid: number
  readonly gid: number
  readonly home: string
}

const parsePasswd = (text: string): Array<PasswdEntry> =>
  text.split("\n").flatMap((line) => {
    const fields = line.split(":")
    if (fields.length < 7) return []
    const uid = Number(fields[2])
    const gid = Number(fields[3])
    return Number.isInteger(uid) && Number.isInteger(gid) ? [{ name: fields[0]!, uid, gid, home: fields[5]! }] : []
  })

const parseGroups = (text: string): Map<string, number> =>
  new Map(
    text.split("\n").flatMap((line) => {
      const fields = line.split(":")
      const gid = Number(fields[2])
      return fields.length >= 3 && fields[2] !== "" && Number.isInteger(gid) ? [[fields[0]!, gid] as const] : []
    })
  )

const numeric = (text: string) => (/^\d+$/.test(text) ? Number(text) : undefined)

/**
 * Docker's `User`: `name`, `uid`, `name:group`, `uid:gid` (either side a name or a number), read
 * against the image's /etc/passwd and /etc/group. An empty user is root. A numeric uid needs no
 * passwd entry (its gid is then the entry's, or 0); a name that is not there is an error.
 */
export const resolveUser = (
  image: string,
  user: string | undefined,
  passwd: string | undefined,
  group: string | undefined
): Effect.Effect<GuestUser, GuestPathError> => {
  const fail = (path: string, reason: string) => Effect.fail(new GuestPathError({ image, path, reason }))
  const spec = (user ?? "").trim()
  const [userPart = "", groupPart] = spec.split(":", 2)
  const entries = parsePasswd(passwd ?? "")
  const uidNumber = numeric(userPart)
  const entry =
    userPart === ""
      ? entries.find((candidate) => candidate.uid === 0)
      : uidNumber !== undefined
        ? entries.find((candidate) => candidate.uid === uidNumber)
        : entries.find((candidate) => candidate.name === userPart)
  if (userPart !== "" && uidNumber === undefined && entry === undefined) {
    return fail("/etc/passwd", `the image's user "${userPart}" is not in it`)
  }
  const uid = uidNumber ?? entry?.uid ?? 0
  let gid = entry?.gid ?? 0
  if (groupPart !== undefined && groupPart !== "") {
    const gidNumber = numeric(groupPart) ?? parseGroups(group ?? "").get(groupPart)
    if (gidNumber === undefined) return fail("/etc/group", `the image's group "${groupPart}" is not in it`)
    gid = gidNumber
  }
  return Effect.succeed({ uid, gid, home: entry?.home || (uid === 0 ? "/root" : "/") })
}

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/**
 * The command's environment as Docker builds it: PATH (unless the image sets one), HOSTNAME and
 * HOME, then the image's Env, later entries winning.
 */
export const commandEnvironment = (
  config: ImageRunConfig,
  hostname: string,
  user: GuestUser
): ReadonlyArray<string> => {
  const env = new Map<string, string>([
    ["PATH", DEFAULT_PATH],
    ["HOSTNAME", hostname],
    ["HOME", user.home]
  ])
  for (const item of config.env ?? []) {
    const at = item.indexOf("=")
    if (at > 0) env.set(item.slice(0, at), item.slice(at + 1))
  }
  return [...env].map(([key, value]) => `${key}=${value}`)
}
