/**
 * Network namespaces for tests that make taps, addresses and nftables tables: each test file
 * creates its own (`banger-test-<random>`), runs the daemon inside it (banger-cli's `netns`
 * option) and deletes it afterwards, so the host's network is never touched.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"

export interface TestNetns {
  readonly name: string
  /** Runs a command inside the namespace and returns its stdout; throws on a non-zero exit. */
  readonly run: (command: string, ...args: Array<string>) => string
  /** Like run, but returns the exit status and output instead of throwing. */
  readonly attempt: (
    command: string,
    ...args: Array<string>
  ) => { readonly status: number | null; readonly stdout: string; readonly stderr: string }
  /** Links (`ip -j link`), by name. */
  readonly links: () => Array<{ ifname: string; operstate?: string; flags?: Array<string> }>
  /** `nft list tables`, as `family name`. */
  readonly nftTables: () => Array<string>
  readonly ipForward: () => string
  /** Deletes the namespace (whatever is left in it goes with it). */
  readonly remove: () => void
}

export const createNetns = (): TestNetns => {
  const name = `banger-test-${randomBytes(4).toString("hex")}`
  execFileSync("ip", ["netns", "add", name])
  const run = (command: string, ...args: Array<string>) =>
    execFileSync("ip", ["netns", "exec", name, command, ...args], { encoding: "utf8", timeout: 30_000 })
  const attempt = (command: string, ...args: Array<string>) => {
    const result = spawnSync("ip", ["netns", "exec", name, command, ...args], { encoding: "utf8", timeout: 30_000 })
    return { status: result.status, stdout: result.stdout ?? "", stderr: result.stderr ?? "" }
  }
  run("ip", "link", "set", "lo", "up")
  return {
    name,
    run,
    attempt,
    links: () => JSON.parse(run("ip", "-j", "link", "show")),
    nftTables: () =>
      (
        JSON.parse(run("nft", "-j", "list", "tables")).nftables as Array<{ table?: { family: string; name: string } }>
      ).flatMap((item) => (item.table ? [`${item.table.family} ${item.table.name}`] : [])),
    ipForward: () => run("cat", "/proc/sys/net/ipv4/ip_forward").trim(),
    remove: () => {
      spawnSync("ip", ["netns", "del", name])
    }
  }
}
