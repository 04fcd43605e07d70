/** The built-in init's pure parts: which init an image gets, users, environment, the config's quoting. */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { ImageRuntime } from "../../src/domain/image.js"
import type { GuestEntry } from "../../src/layers/guest/guest-fs.js"
import { GUEST_BUSYBOX, HOST_BUSYBOX, renderConfig } from "../../src/layers/guest/init/init-script.js"
import { chooseInit, commandEnvironment, commandLine, resolveUser } from "../../src/pipelines/vm/guest-init.js"

const file = (mode: number, size = 1000): GuestEntry => ({
  ino: 20,
  name: "x",
  kind: "file",
  mode,
  uid: 0,
  gid: 0,
  size
})

describe("chooseInit", () => {
  it("boots systemd and inittab-driven inits, banger's for everything else", () => {
    const systemd = { sbinInit: file(0o755), sbinInitPath: "/usr/lib/systemd/systemd", hasInittab: false }
    expect(chooseInit(systemd)).toEqual({ _tag: "ImageInit", systemd: true })
    expect(chooseInit({ sbinInit: file(0o755), sbinInitPath: "/usr/sbin/init", hasInittab: true })).toEqual({
      _tag: "ImageInit",
      systemd: false
    })
    const builtin = { _tag: "BuiltinInit" }
    expect(chooseInit({ sbinInit: undefined, sbinInitPath: undefined, hasInittab: false })).toEqual(builtin)
    // alpine: /sbin/init -> /bin/busybox, with or without an inittab.
    expect(chooseInit({ sbinInit: file(0o755), sbinInitPath: "/bin/busybox", hasInittab: true })).toEqual(builtin)
    expect(chooseInit({ ...systemd, sbinInit: file(0o644) })).toEqual(builtin)
    expect(chooseInit({ ...systemd, sbinInit: file(0o755, 0) })).toEqual(builtin)
    expect(chooseInit({ ...systemd, sbinInit: { ...file(0o755), kind: "directory" } })).toEqual(builtin)
    expect(chooseInit({ sbinInit: file(0o755), sbinInitPath: "/usr/sbin/init", hasInittab: false })).toEqual(builtin)
  })
})

const passwd =
  "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n"
const group = "root:x:0:\nstaff:x:50:\napp:x:1001:\n"
const user = (spec: string | undefined, p: string | undefined = passwd, g: string | undefined = group) =>
  Effect.runSync(Effect.either(resolveUser("img", spec, p, g)))

describe("resolveUser", () => {
  it("reads names and numbers as Docker does", () => {
    expect(user(undefined)).toEqual(expect.objectContaining({ right: { uid: 0, gid: 0, home: "/root" } }))
    expect(user("app")).toEqual(expect.objectContaining({ right: { uid: 1000, gid: 1001, home: "/home/app" } }))
    expect(user("1000")).toEqual(expect.objectContaining({ right: { uid: 1000, gid: 1001, home: "/home/app" } }))
    expect(user("app:staff")).toEqual(expect.objectContaining({ right: { uid: 1000, gid: 50, home: "/home/app" } }))
    expect(user("4242:77", undefined, undefined)).toEqual(
      expect.objectContaining({ right: { uid: 4242, gid: 77, home: "/" } })
    )
    expect(user("4242")).toEqual(expect.objectContaining({ right: { uid: 4242, gid: 0, home: "/" } }))
  })

  it("fails on names the image does not have", () => {
    const missingUser = user("ghost")
    expect(missingUser._tag === "Left" && missingUser.left.message).toContain('user "ghost" is not in it')
    const missingGroup = user("app:wheel")
    expect(missingGroup._tag === "Left" && missingGroup.left.path).toBe("/etc/group")
  })
})

describe("command line and environment", () => {
  it("combines Entrypoint and Cmd, and layers the image's Env over PATH, HOSTNAME and HOME", () => {
    expect(commandLine({ entrypoint: ["/bin/app", "--serve"], cmd: ["--port", "80"] })).toEqual([
      "/bin/app",
      "--serve",
      "--port",
      "80"
    ])
    expect(commandLine({ cmd: ["sh"] })).toEqual(["sh"])
    expect(commandLine({})).toEqual([])
    // What the pull records in the image row is what configure-guest takes.
    const runtime = new ImageRuntime({ entrypoint: ["/e"], cmd: ["c"], env: [], workingDir: "", user: "" })
    expect(commandLine(runtime)).toEqual(["/e", "c"])
    const env = commandEnvironment({ env: ["PATH=/opt/bin", "A=1=2", "HOME=/data"] }, "vm1", {
      uid: 0,
      gid: 0,
      home: "/root"
    })
    expect(env).toEqual(["PATH=/opt/bin", "HOSTNAME=vm1", "HOME=/data", "A=1=2"])
  })
})

describe("renderConfig", () => {
  it("quotes every value so the shell hands the command its exact argv and environment", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "banger-init-config-"))
    try {
      const argv = ["/bin/busybox", "sh", "-c", 'printf "<%s>" "$0" "$@"; printf "[%s]" "$X" "$(id -u):$(id -g)"']
      const tricky = ["it's", "a b", "$(echo no)", "`no`", '"quoted"', "back\\slash", "new\nline"]
      const config = renderConfig({
        name: "vm's",
        hostname: "vm",
        uid: 1234,
        gid: 5678,
        workingDir: "/",
        env: ["X=v'$HOME"],
        argv: [...argv, ...tricky]
      })
      // On the host, the guest's busybox is the host's.
      fs.writeFileSync(path.join(dir, "config"), config.replaceAll(GUEST_BUSYBOX, HOST_BUSYBOX))
      const out = execFileSync(
        HOST_BUSYBOX,
        ["sh", "-c", '. "$1"; echo "$BANGER_NAME"; banger_exec', "sh", path.join(dir, "config")],
        {
          encoding: "utf8"
        }
      )
      expect(out).toBe(`vm's\n${tricky.map((arg) => `<${arg}>`).join("")}[v'$HOME][1234:5678]`)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
