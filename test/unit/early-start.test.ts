import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { plainDaemonCommand } from "../../src/daemon/early-start.js"
import { daemonTarget } from "../../src/daemon/spawn.js"

describe("plainDaemonCommand: which command lines bin/banger starts a daemon for", () => {
  it.each([
    [["image", "pull", "debian:bookworm", "--kernel", "/k", "--json"], undefined],
    [["--state-dir", "/s", "image", "list"], "/s"],
    [["--state-dir=rel/s", "kernel", "register", "k", "--kernel", "/k"], "rel/s"],
    [["--state-dir", "/s", "op", "watch", "01ABC"], "/s"],
    // Values after the subcommand are not read: an image named like a command is still a pull.
    [["image", "pull", "daemon", "--name", "image"], undefined]
  ])("%j → state dir %s", (args, stateDir) => {
    expect(plainDaemonCommand(args)).toEqual({ stateDir })
  })

  it.each([
    [[]],
    [["--help"]],
    [["image"]],
    [["image", "--help"]],
    [["image", "list", "--help"]],
    [["image", "list", "-h"]],
    [["image", "list", "--HELP"]],
    [["--state-dir", "/s", "image", "pull", "x", "--version"]],
    [["image", "pull", "x", "--wizard"]],
    [["image", "list", "--completions", "bash"]],
    // The CLI's own commands that need no daemon, or are the daemon.
    [["daemon"]],
    [["--state-dir", "/s", "daemon", "--socket", "/s/x.sock"]],
    [["doctor"]],
    [["--state-dir", "/s", "doctor", "--json"]],
    // Not the subcommands, or not spelled as they are.
    [["image", "lst"]],
    [["IMAGE", "list"]],
    [["image", "list2"]],
    [["toString", "x"]],
    [["constructor", "x"]],
    // State dirs the launcher does not interpret the way the CLI does.
    [["image", "list", "--state-dir", "/s"]],
    [["image", "list", "--state-dir=/s"]],
    [["--state-dir", "/a", "--state-dir", "/b", "image", "list"]],
    [["--state-dir"]],
    [["--state-dir", "", "image", "list"]],
    [["--state-dir=", "image", "list"]],
    [["--state-dir", "--json", "image", "list"]],
    [["--state-dir", "image", "image", "list"]],
    [["--state-dir", "daemon", "image", "list"]],
    [["--state-dir", "doctor", "image", "list"]],
    [["--log-level", "debug", "image", "list"]]
  ])("%j → none", (args) => {
    expect(plainDaemonCommand(args)).toBeUndefined()
  })
})

describe("daemonTarget: the state dir and socket of the CLI's daemon", () => {
  const home = { HOME: "/home/u" }
  it("resolves --state-dir against the working directory, the socket inside it", () => {
    expect(daemonTarget("rel/s", home)).toEqual({
      stateDir: path.resolve("rel/s"),
      socket: path.join(path.resolve("rel/s"), "banger.sock")
    })
  })

  it("takes $BANGER_STATE_DIR when no option is given, and $BANGER_SOCKET over the state dir's socket", () => {
    expect(daemonTarget(undefined, { BANGER_STATE_DIR: "/env/s" })).toEqual({
      stateDir: "/env/s",
      socket: "/env/s/banger.sock"
    })
    expect(daemonTarget("/opt/s", { BANGER_STATE_DIR: "/env/s", BANGER_SOCKET: "/run/b.sock" })).toEqual({
      stateDir: "/opt/s",
      socket: "/run/b.sock"
    })
  })

  it("defaults to /var/lib/banger for root, else under $XDG_DATA_HOME", () => {
    const isRoot = process.getuid?.() === 0
    expect(daemonTarget(undefined, { XDG_DATA_HOME: "/xdg" }).stateDir).toBe(isRoot ? "/var/lib/banger" : "/xdg/banger")
  })
})
