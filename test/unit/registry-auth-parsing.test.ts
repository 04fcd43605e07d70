import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { dockerConfigPath, findCredentials, loadCredentials } from "../../src/layers/registry/docker-config.js"
import { parseWwwAuthenticate, preferredChallenge } from "../../src/layers/registry/www-authenticate.js"

describe("parseWwwAuthenticate", () => {
  it("parses Docker Hub's bearer challenge", () => {
    expect(
      parseWwwAuthenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull"'
      )
    ).toEqual([
      {
        scheme: "bearer",
        params: {
          realm: "https://auth.docker.io/token",
          service: "registry.docker.io",
          scope: "repository:library/debian:pull"
        }
      }
    ])
  })

  it("parses basic, unquoted values, odd spacing and case", () => {
    expect(parseWwwAuthenticate('Basic realm="Registry Realm"')).toEqual([
      { scheme: "basic", params: { realm: "Registry Realm" } }
    ])
    expect(parseWwwAuthenticate("BEARER  Realm = https://x/token , Service=reg")).toEqual([
      { scheme: "bearer", params: { realm: "https://x/token", service: "reg" } }
    ])
  })

  it("keeps commas and escaped quotes inside quoted values", () => {
    expect(
      parseWwwAuthenticate('Bearer realm="https://x/t",scope="repository:a:pull,push",error="say \\"hi\\""')
    ).toEqual([
      { scheme: "bearer", params: { realm: "https://x/t", scope: "repository:a:pull,push", error: 'say "hi"' } }
    ])
  })

  it("splits several challenges joined into one header, and prefers bearer", () => {
    const challenges = parseWwwAuthenticate('Basic realm="r", Bearer realm="https://x/token",service="s"')
    expect(challenges.map((challenge) => challenge.scheme)).toEqual(["basic", "bearer"])
    expect(challenges[1]!.params).toEqual({ realm: "https://x/token", service: "s" })
    expect(preferredChallenge(challenges)?.scheme).toBe("bearer")
  })

  it("survives garbage without looping", () => {
    expect(parseWwwAuthenticate("")).toEqual([])
    expect(parseWwwAuthenticate('="x", ,,')).toEqual([{ scheme: "x", params: {} }])
    expect(preferredChallenge(parseWwwAuthenticate("Negotiate abc"))).toBeUndefined()
  })
})

describe("findCredentials", () => {
  const auth = (user: string, pass: string) => Buffer.from(`${user}:${pass}`).toString("base64")

  it("decodes auth (base64 user:pass) for a registry host, password may contain colons", () => {
    expect(findCredentials({ auths: { "localhost:5000": { auth: auth("me", "p:w") } } }, "localhost:5000")).toEqual({
      _tag: "Basic",
      username: "me",
      password: "p:w"
    })
  })

  it("reads username/password fields and matches URL-shaped keys", () => {
    expect(findCredentials({ auths: { "https://ghcr.io/v2/": { username: "u", password: "p" } } }, "ghcr.io")).toEqual({
      _tag: "Basic",
      username: "u",
      password: "p"
    })
  })

  it("files Docker Hub under any of its names", () => {
    for (const key of ["https://index.docker.io/v1/", "docker.io", "registry-1.docker.io", "index.docker.io"]) {
      expect(findCredentials({ auths: { [key]: { auth: auth("hub", "pw") } } }, "docker.io")).toEqual({
        _tag: "Basic",
        username: "hub",
        password: "pw"
      })
    }
    expect(findCredentials({ auths: { "ghcr.io": { auth: auth("x", "y") } } }, "docker.io")).toBeUndefined()
  })

  it("prefers identity tokens, then registry tokens, over passwords", () => {
    expect(findCredentials({ auths: { r: { auth: auth("<token>", ""), identitytoken: "refresh" } } }, "r")).toEqual({
      _tag: "IdentityToken",
      username: "<token>",
      token: "refresh"
    })
    expect(findCredentials({ auths: { r: { registrytoken: "bearer", username: "u", password: "p" } } }, "r")).toEqual({
      _tag: "RegistryToken",
      token: "bearer"
    })
  })

  it("ignores other hosts, empty entries and malformed configs", () => {
    expect(findCredentials({ auths: { "other:5000": { auth: auth("a", "b") } } }, "localhost:5000")).toBeUndefined()
    expect(findCredentials({ auths: { r: {} } }, "r")).toBeUndefined()
    expect(findCredentials({ auths: { r: { auth: "bm9jb2xvbg==" } } }, "r")).toBeUndefined()
    expect(findCredentials({ credsStore: "desktop" }, "r")).toBeUndefined()
    expect(findCredentials(null, "r")).toBeUndefined()
  })
})

describe("docker config file", () => {
  it("lives in $DOCKER_CONFIG, else ~/.docker", () => {
    expect(dockerConfigPath({ DOCKER_CONFIG: "/etc/dc" })).toBe("/etc/dc/config.json")
    expect(dockerConfigPath({})).toBe(path.join(os.homedir(), ".docker", "config.json"))
  })

  it.effect("reads credentials from the file; missing or broken files mean none", () =>
    Effect.gen(function* () {
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "banger-docker-config-"))),
        (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
      )
      const good = path.join(dir, "good.json")
      const broken = path.join(dir, "broken.json")
      yield* Effect.promise(() =>
        Promise.all([
          fs.writeFile(good, JSON.stringify({ auths: { "r:1": { username: "u", password: "p" } } })),
          fs.writeFile(broken, "{ not json")
        ])
      )
      expect(yield* loadCredentials(good, "r:1")).toEqual({ _tag: "Basic", username: "u", password: "p" })
      expect(yield* loadCredentials(broken, "r:1")).toBeUndefined()
      expect(yield* loadCredentials(path.join(dir, "missing.json"), "r:1")).toBeUndefined()
    }).pipe(Effect.scoped)
  )
})
