import * as net from "node:net"
import { Either } from "effect"

/** Where `--web` listens when given without an address. */
export const DEFAULT_WEB_ADDRESS = "127.0.0.1:7878"

export interface WebAddress {
  /** An IP literal or `localhost`, without brackets. */
  readonly host: string
  readonly port: number
}

export interface WebConfig extends WebAddress {
  /** `--web-allow-remote`: listening on a non-loopback address was asked for explicitly. */
  readonly allowRemote: boolean
}

export const isLoopback = (host: string): boolean => {
  if (host === "localhost" || host === "::1") return true
  if (net.isIPv4(host)) return host.startsWith("127.")
  return false
}

/** `HOST:PORT`, `[V6]:PORT` or a bare `PORT` (on 127.0.0.1); hosts are IP literals or `localhost`. */
export const parseWebAddress = (input: string): Either.Either<WebAddress, string> => {
  const trimmed = input.trim()
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(trimmed) ?? /^()()(\d{1,5})$/.exec(trimmed)
  if (!match) return Either.left(`invalid address "${input}" (use HOST:PORT, e.g. ${DEFAULT_WEB_ADDRESS})`)
  const host = match[1] || match[2] || "127.0.0.1"
  const port = Number(match[3])
  if (port < 1 || port > 65535) return Either.left(`invalid port in "${input}" (1-65535)`)
  if (host !== "localhost" && net.isIP(host) === 0)
    return Either.left(`invalid host in "${input}" (an IP address or localhost)`)
  return Either.right({ host, port })
}

/** The web config from the daemon's options; non-loopback only with `allowRemote`. */
export const webConfig = (input: string, allowRemote: boolean): Either.Either<WebConfig, string> =>
  Either.flatMap(parseWebAddress(input), (address) =>
    isLoopback(address.host) || allowRemote
      ? Either.right({ ...address, allowRemote })
      : Either.left(
          `${address.host} is not a loopback address; the UI can start VMs, so serving it beyond this machine needs --web-allow-remote`
        )
  )

/** `host:port` as it appears in a URL (IPv6 bracketed). */
export const hostPort = (address: WebAddress): string =>
  `${net.isIPv6(address.host) ? `[${address.host}]` : address.host}:${address.port}`

/** The address browsers should use: a wildcard bind is reached on loopback from this machine. */
export const browseAddress = (address: WebAddress): WebAddress =>
  address.host === "0.0.0.0"
    ? { ...address, host: "127.0.0.1" }
    : address.host === "::"
      ? { ...address, host: "::1" }
      : address

/**
 * Whether a request's Host header names this server. Only IP literals and `localhost` are
 * accepted, on the listening port: a DNS name could be rebound to 127.0.0.1 by a hostile page.
 * A loopback listener accepts only loopback names.
 */
export const hostAllowed = (header: string | undefined, listening: WebAddress): boolean => {
  if (header === undefined) return false
  const parsed = parseWebAddress(header)
  if (Either.isLeft(parsed) || !/:\d+$/.test(header)) return false
  const { host, port } = parsed.right
  if (port !== listening.port) return false
  if (isLoopback(listening.host)) return isLoopback(host)
  const wildcard = listening.host === "0.0.0.0" || listening.host === "::"
  return wildcard || host === listening.host || isLoopback(host)
}

/** An Origin header matches when it is exactly this server as the browser addressed it. */
export const originAllowed = (origin: string, host: string): boolean => origin === `http://${host}`
