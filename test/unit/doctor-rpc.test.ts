/** `doctor.run` as the daemon answers it: its own identity for the daemon check, the request's catalog and version. */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { hostProbeFake } from "../../src/layers/host/host-probe-fake.js"
import { VERSION } from "../../src/version.js"
import { fakePull, handlerClient, tempDir, testServices } from "../support/daemon-harness.js"

describe("doctor.run (RpcTest client)", () => {
  it.live("answers every check; the daemon check is the daemon itself; a request's catalog replaces the default", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const stateDir = path.join(dir, "state")
      const catalog = path.join(dir, "catalog.json")
      fs.writeFileSync(
        catalog,
        JSON.stringify({
          kernels: [{ name: "k", ref: "registry.test/k:1", arch: "amd64", description: "k", default: true }],
          images: [{ name: "i", ref: "registry.test/i:1", kernel: "k", description: "i", default: true }]
        })
      )
      // The harness's identity: pid of this process, version "test", socket "-" (which the fake host has).
      const host = hostProbeFake({ files: { "-": { kind: "socket", mode: 0o600 } } })
      const { client } = yield* handlerClient(stateDir, Layer.merge(testServices(stateDir), host), fakePull())

      const byDefault = yield* client.doctor.run({})
      expect(byDefault.map((check) => check.name)).toContain("kvm")
      const catalogCheck = byDefault.find((check) => check.name === "catalog")
      expect(catalogCheck).toMatchObject({ status: "fail", detail: expect.stringContaining("no-catalog.json") })
      expect(byDefault.find((check) => check.name === "daemon")).toMatchObject({
        status: "ok",
        detail: `pid ${process.pid}, version test, socket - (mode 0600)`
      })
      // The fake host has nothing: no kvm, no tools.
      expect(byDefault.find((check) => check.name === "e2fsprogs")?.status).toBe("fail")

      const asked = yield* client.doctor.run({ catalog, clientVersion: VERSION })
      expect(asked.find((check) => check.name === "catalog")).toMatchObject({
        status: "ok",
        detail: `${catalog}: 1 kernels, 1 images`
      })
      expect(asked.find((check) => check.name === "default-image")?.detail).toBe(
        "i (registry.test/i:1) is pulled on first use"
      )
      expect(asked.find((check) => check.name === "daemon")).toMatchObject({
        status: "warn",
        detail: `pid ${process.pid} runs banger test, this CLI is ${VERSION}`
      })
    }).pipe(Effect.scoped)
  )
})
