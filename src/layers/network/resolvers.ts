/** `nameserver` lines of a resolv.conf, in order. */
export const nameservers = (text: string): Array<string> =>
  text.split("\n").flatMap((line) => {
    const match = /^\s*nameserver\s+(\S+)/.exec(line)
    return match ? [match[1]!] : []
  })

const isLoopback = (address: string) => address.startsWith("127.") || address === "::1"

/**
 * The resolvers a guest can use: the host's, unless they are a loopback stub (systemd-resolved's
 * 127.0.0.53, dnsmasq on 127.0.0.1), which the guest cannot reach; then systemd-resolved's own
 * list of upstream servers. Empty when neither names a usable one.
 */
export const chooseResolvers = (etcResolvConf: string | undefined, resolvedUpstream: string | undefined) => {
  const usable = (text: string | undefined) => nameservers(text ?? "").filter((address) => !isLoopback(address))
  const own = usable(etcResolvConf)
  return own.length > 0 ? own : usable(resolvedUpstream)
}

export const ETC_RESOLV_CONF = "/etc/resolv.conf"
/** systemd-resolved's upstream servers (the stub's file is /run/systemd/resolve/stub-resolv.conf). */
export const RESOLVED_UPSTREAM = "/run/systemd/resolve/resolv.conf"

export const resolvConf = (servers: ReadonlyArray<string>) =>
  `# Written by banger: the host's resolvers.\n${servers.map((server) => `nameserver ${server}\n`).join("")}`
