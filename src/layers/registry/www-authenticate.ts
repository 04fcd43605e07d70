/** One challenge from a `WWW-Authenticate` header: `Bearer realm="...",service="..."`. */
export interface Challenge {
  /** Lower-cased: `bearer`, `basic`. */
  readonly scheme: string
  /** Parameter names lower-cased, values unquoted. */
  readonly params: Readonly<Record<string, string>>
}

const isSpace = (char: string | undefined) => char === " " || char === "\t"
const tokenPattern = /^[^\s,="]+/

/**
 * Parses every challenge in a header (RFC 7235). Several challenges may share one header (and
 * HTTP stacks join repeated headers with ", "), so a name followed by `=` is a parameter of the
 * current challenge and anything else starts the next one.
 */
export const parseWwwAuthenticate = (header: string): ReadonlyArray<Challenge> => {
  const challenges: Array<{ scheme: string; params: Record<string, string> }> = []
  let i = 0
  const skip = (alsoCommas: boolean) => {
    while (i < header.length && (isSpace(header[i]) || (alsoCommas && header[i] === ","))) i++
  }
  const token = (): string | undefined => {
    const match = tokenPattern.exec(header.slice(i))
    if (!match) return undefined
    i += match[0].length
    return match[0]
  }
  const quoted = (): string => {
    // Opening quote already consumed; a backslash escapes the next character.
    let value = ""
    while (i < header.length && header[i] !== '"') {
      if (header[i] === "\\" && i + 1 < header.length) i++
      value += header[i]
      i++
    }
    i++
    return value
  }

  while (i < header.length) {
    skip(true)
    const scheme = token()
    if (scheme === undefined) {
      // Stray character (a lone `=` or quote): step over it rather than loop forever.
      if (i < header.length) i++
      continue
    }
    const current = { scheme: scheme.toLowerCase(), params: {} as Record<string, string> }
    challenges.push(current)
    for (;;) {
      skip(true)
      const start = i
      const name = token()
      if (name === undefined) break
      skip(false)
      if (header[i] !== "=") {
        // Not a parameter: the next challenge's scheme (or a token68 we have no use for).
        i = start
        break
      }
      i++
      skip(false)
      let value: string
      if (header[i] === '"') {
        i++
        value = quoted()
      } else {
        value = /^[^\s,]*/.exec(header.slice(i))![0]
        i += value.length
      }
      current.params[name.toLowerCase()] = value
    }
  }
  return challenges
}

/** Bearer wins over Basic when a registry offers both: it scopes access to one repository. */
export const preferredChallenge = (challenges: ReadonlyArray<Challenge>): Challenge | undefined =>
  challenges.find((c) => c.scheme === "bearer") ?? challenges.find((c) => c.scheme === "basic")
