/**
 * A layer blob as a stream of uncompressed bytes. gzip runs in-process (node zlib); zstd runs as a
 * `zstd -dc` child, because Node 20's zlib has none. The child lives in the stream's scope: when
 * the stream ends, fails or is interrupted it is SIGKILLed if still running and always reaped.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process"
import { createReadStream } from "node:fs"
import type { Readable } from "node:stream"
import * as zlib from "node:zlib"
import { NodeStream } from "@effect/platform-node"
import { Effect, Stream } from "effect"
import { FilesystemError, InvalidLayer } from "../../domain/errors.js"
import type { LayerCompression } from "../../domain/oci.js"

export interface CompressedBlob {
  readonly path: string
  readonly compression: LayerCompression
  /** Names the layer in errors. */
  readonly name: string
}

const reasonOf = (error: unknown) => (error instanceof Error ? error.message : String(error))

const readFile = (blob: CompressedBlob) =>
  NodeStream.fromReadable<FilesystemError, Uint8Array>(
    () => createReadStream(blob.path, { highWaterMark: 256 * 1024 }),
    (error) => new FilesystemError({ path: blob.path, reason: reasonOf(error) })
  )

type ZstdExit =
  | { readonly _tag: "Exited"; readonly code: number | null }
  | { readonly _tag: "SpawnFailed"; readonly error: Error }

interface ZstdProcess {
  readonly child: ChildProcessByStdio<null, Readable, Readable>
  readonly exited: Promise<ZstdExit>
  readonly stderrDone: Promise<void>
  readonly stderr: () => string
}

const STDERR_LIMIT = 8 * 1024

const spawnZstd = (path: string) =>
  Effect.sync((): ZstdProcess => {
    const child = spawn("zstd", ["-d", "-c", "-q", "--", path], { stdio: ["ignore", "pipe", "pipe"] })
    // Listen before anything can happen: a missed "exit" would hang the reaper.
    const exited = new Promise<ZstdExit>((resolve) => {
      child.once("error", (error) => resolve({ _tag: "SpawnFailed", error }))
      child.once("exit", (code) => resolve({ _tag: "Exited", code }))
    })
    const chunks: Array<Buffer> = []
    let kept = 0
    child.stderr.on("data", (chunk: Buffer) => {
      if (kept < STDERR_LIMIT) {
        chunks.push(chunk)
        kept += chunk.length
      }
    })
    const stderrDone = new Promise<void>((resolve) => {
      child.stderr.once("close", () => resolve())
      child.stderr.once("error", () => resolve())
    })
    return { child, exited, stderrDone, stderr: () => Buffer.concat(chunks).toString("utf8").trim() }
  })

const reap = (zstd: ZstdProcess) =>
  Effect.gen(function* () {
    if (zstd.child.exitCode === null && zstd.child.signalCode === null) zstd.child.kill("SIGKILL")
    zstd.child.stdout.destroy()
    zstd.child.stderr.destroy()
    yield* Effect.promise(() => zstd.exited)
  })

const checkExit = (zstd: ZstdProcess, blob: CompressedBlob) =>
  Effect.gen(function* () {
    const exit = yield* Effect.promise(() => zstd.exited)
    if (exit._tag === "SpawnFailed") {
      return yield* Effect.fail(
        new FilesystemError({ path: "zstd", reason: `cannot run zstd (is it installed?): ${exit.error.message}` })
      )
    }
    if (exit.code !== 0) {
      yield* Effect.promise(() => zstd.stderrDone)
      const detail = zstd.stderr()
      return yield* Effect.fail(
        new InvalidLayer({
          layer: blob.name,
          reason: `zstd exited with code ${exit.code}${detail ? `: ${detail}` : ""}`
        })
      )
    }
  })

const zstdStream = (blob: CompressedBlob) =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      const zstd = yield* Effect.acquireRelease(spawnZstd(blob.path), reap)
      const output = NodeStream.fromReadable<InvalidLayer, Uint8Array>(
        () => zstd.child.stdout,
        (error) => new InvalidLayer({ layer: blob.name, reason: `zstd: ${reasonOf(error)}` })
      )
      // The exit status is part of the stream: a clean-looking but cut-short output must still fail.
      return Stream.concat(output, Stream.drain(Stream.fromEffect(checkExit(zstd, blob))))
    })
  )

export const uncompressedStream = (blob: CompressedBlob): Stream.Stream<Uint8Array, InvalidLayer | FilesystemError> => {
  switch (blob.compression) {
    case "none":
      return readFile(blob)
    case "gzip":
      return readFile(blob).pipe(
        NodeStream.pipeThroughDuplex(
          () => zlib.createGunzip(),
          (error) => new InvalidLayer({ layer: blob.name, reason: `gzip: ${reasonOf(error)}` })
        )
      )
    case "zstd":
      return zstdStream(blob)
  }
}
