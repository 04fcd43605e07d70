import { isIP } from "node:net"

/** Docker Hub is named `docker.io` in references but serves the API from another host. */
const dockerHubAliases = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"])

export const isDockerHub = (registry: string): boolean => dockerHubAliases.has(registry.toLowerCase())

/** The host (with port) that answers `/v2/` for a registry as named in a reference. */
export const apiHost = (registry: string): string => (isDockerHub(registry) ? "registry-1.docker.io" : registry)

/** Splits `host[:port]`, including bracketed IPv6 (`[::1]:5000`). */
export const splitHostPort = (host: string): { readonly hostname: string; readonly port: string | undefined } => {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(host)
  if (bracketed) return { hostname: bracketed[1]!.toLowerCase(), port: bracketed[2] }
  // A bare IPv6 address has several colons and no port.
  if (isIP(host) === 6) return { hostname: host.toLowerCase(), port: undefined }
  const colon = host.lastIndexOf(":")
  if (colon === -1) return { hostname: host.toLowerCase(), port: undefined }
  return { hostname: host.slice(0, colon).toLowerCase(), port: host.slice(colon + 1) }
}

export const isLoopbackHostname = (hostname: string): boolean => {
  const bare = hostname.replace(/^\[|\]$/g, "").toLowerCase()
  if (bare === "localhost" || bare === "::1") return true
  return isIP(bare) === 4 && bare.startsWith("127.")
}

/** `BANGER_INSECURE_REGISTRIES`: comma-separated `host[:port]`, blanks ignored. */
export const parseInsecureRegistries = (value: string | undefined): ReadonlyArray<string> =>
  (value ?? "")
    .split(",")
    .map((entry) => entry.trim().toLowerCase())
    .filter((entry) => entry !== "")

/**
 * Plain HTTP only where no one else can listen in (loopback) or where the user opted in; an
 * insecure entry without a port covers every port of that host.
 */
export const allowsPlainHttp = (host: string, insecure: ReadonlyArray<string>): boolean => {
  const { hostname, port } = splitHostPort(host)
  if (isLoopbackHostname(hostname)) return true
  return insecure.some((entry) => {
    const wanted = splitHostPort(entry)
    return wanted.hostname === hostname && (wanted.port === undefined || wanted.port === port)
  })
}

/** `scheme://host` for the registry's API. */
export const registryBaseUrl = (registry: string, insecure: ReadonlyArray<string>): string => {
  const host = apiHost(registry)
  return `${allowsPlainHttp(host, insecure) ? "http" : "https"}://${host}`
}
