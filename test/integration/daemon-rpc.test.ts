import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Layer, Stream } from "effect"
import { DaemonSocket, pullViaDaemon } from "../../src/cli/daemon-client.js"
import { Ext4Error, ImageNotFound, InvalidKernelInput } from "../../src/domain/errors.js"
import { showImage } from "../../src/pipelines/image/manage-images.js"
import { registerKernel } from "../../src/pipelines/kernel/manage-kernels.js"
import { BangerClient } from "../../src/rpc/client.js"
import { connect, startInProcessDaemon, tempDir, testServices, writeKernel } from "../support/daemon-harness.js"
import { bundle, cacheDir } from "../support/daemon-process.js"

const repo = path.resolve(import.meta.dirname, "../..")

describe("RPC over the daemon's socket", () => {
  it.live("domain errors cross the wire as the same classes with the same messages as in-process", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const stateDir = path.join(dir, "state")
      const daemon = yield* startInProcessDaemon(stateDir)
      const client = yield* connect(daemon.socket)

      const remote = yield* Effect.flip(client.image.show({ name: "ghost" }))
      const local = yield* Effect.flip(showImage("ghost")).pipe(Effect.provide(testServices(path.join(dir, "local"))))
      expect(remote).toBeInstanceOf(ImageNotFound)
      expect(remote.message).toBe(local.message)

      const badKernel = { kernel: "vmlinuz" }
      const remoteKernel = yield* Effect.flip(client.kernel.register({ name: "k", ...badKernel }))
      const localKernel = yield* Effect.flip(
        registerKernel("k", { ...badKernel, initrd: undefined, modules: undefined })
      ).pipe(Effect.provide(testServices(path.join(dir, "local"))))
      expect(remoteKernel).toBeInstanceOf(InvalidKernelInput)
      expect(remoteKernel.message).toBe(localKernel.message)
    }).pipe(Effect.scoped)
  )

  it.live("a failed operation's error arrives in op.watch as the pipeline's error class", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const failWith = new Ext4Error({ tool: "mkfs.ext4", reason: "exit code 1", stderr: "disk full" })
      const daemon = yield* startInProcessDaemon(path.join(dir, "state"), { failWith })
      const client = yield* connect(daemon.socket)
      const kernel = writeKernel(dir)
      const begun = yield* client.image.pull({ reference: "debian", kernel: { _tag: "Paths", kernel } })
      const final = Chunk.toReadonlyArray(yield* Stream.runCollect(client.op.watch({ id: begun.id }))).at(-1)!
      expect(final.state).toBe("failed")
      expect(final.error).toBeInstanceOf(Ext4Error)
      expect(final.error?.message).toBe(failWith.message)
    }).pipe(Effect.scoped)
  )

  it.live(
    "the CLI's pull follows the operation to its image, detaches on request, and fails with the pipeline's error",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir()
        const kernel = writeKernel(dir)
        const daemon = yield* startInProcessDaemon(path.join(dir, "state"))
        const asCli = Layer.merge(
          BangerClient.layer({ socket: daemon.socket }),
          Layer.succeed(DaemonSocket, daemon.socket)
        )
        const followed = yield* pullViaDaemon(
          { reference: "debian", kernel: { _tag: "Paths", kernel } },
          { detach: false }
        ).pipe(Effect.provide(asCli))
        expect(followed._tag === "Finished" && followed.image.name).toBe("debian-latest")
        const detached = yield* pullViaDaemon(
          { reference: "debian", name: "other", kernel: { _tag: "Paths", kernel } },
          { detach: true }
        ).pipe(Effect.provide(asCli))
        expect(detached._tag === "Detached" && detached.operation.state).toBe("running")

        const failWith = new Ext4Error({ tool: "mkfs.ext4", reason: "exit code 1", stderr: "disk full" })
        const failing = yield* startInProcessDaemon(path.join(dir, "failing"), { failWith })
        const error = yield* Effect.flip(
          pullViaDaemon({ reference: "debian", kernel: { _tag: "Paths", kernel } }, { detach: false }).pipe(
            Effect.provide(
              Layer.merge(BangerClient.layer({ socket: failing.socket }), Layer.succeed(DaemonSocket, failing.socket))
            )
          )
        )
        expect(error).toBeInstanceOf(Ext4Error)
        expect(error.message).toBe(failWith.message)
      }).pipe(Effect.scoped)
  )

  it.live("another Effect program uses banger/rpc (package exports) against a live daemon", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const stateDir = path.join(dir, "state")
      const daemon = yield* startInProcessDaemon(stateDir)
      const kernel = writeKernel(dir)
      const client = yield* connect(daemon.socket)
      const begun = yield* client.image.pull({ reference: "app:1", kernel: { _tag: "Paths", kernel } })
      yield* Stream.runDrain(client.op.watch({ id: begun.id }))

      // A package laid out as published: the real package.json (its exports map) and dist/rpc built from src/rpc.
      const pkg = path.join(cacheDir, `pkg-${process.pid}`)
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(pkg, { recursive: true, force: true })))
      fs.mkdirSync(path.join(pkg, "dist", "rpc"), { recursive: true })
      fs.mkdirSync(path.join(pkg, "consumer"), { recursive: true })
      fs.copyFileSync(path.join(repo, "package.json"), path.join(pkg, "package.json"))
      fs.renameSync(bundle("src/rpc/index.ts", `rpc-index`), path.join(pkg, "dist", "rpc", "index.js"))
      const program = path.join(pkg, "consumer", "program.mjs")
      fs.writeFileSync(
        program,
        `import { Effect } from "effect"
import { BangerClient } from "banger/rpc"
const program = Effect.gen(function* () {
  const client = yield* BangerClient
  const images = yield* client.image.list()
  const missing = yield* Effect.flip(client.image.show({ name: "ghost" }))
  const info = yield* client.daemon.info()
  return { names: images.map((image) => image.name), missing: missing._tag, pid: info.pid }
})
const result = await Effect.runPromise(program.pipe(Effect.provide(BangerClient.layer({ socket: process.argv[2] }))))
console.log(JSON.stringify(result))
`
      )
      // Asynchronously: the daemon under test runs in this process and must keep answering.
      const run = yield* Effect.promise(
        () =>
          new Promise<{ stdout: string; stderr: string }>((resolve) => {
            const child = spawn(process.execPath, [program, daemon.socket])
            let stdout = ""
            let stderr = ""
            child.stdout.on("data", (chunk) => (stdout += chunk))
            child.stderr.on("data", (chunk) => (stderr += chunk))
            child.once("exit", () => resolve({ stdout, stderr }))
          })
      )
      expect(run.stderr).toBe("")
      expect(JSON.parse(run.stdout)).toEqual({ names: ["app-1"], missing: "ImageNotFound", pid: process.pid })
    }).pipe(Effect.scoped)
  )
})
