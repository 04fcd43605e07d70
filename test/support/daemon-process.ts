/**
 * Real processes for daemon tests: bundles an entry (the CLI, or the fixture daemon) with esbuild
 * into `.cache/`, where node_modules still resolves, and runs it. Every process started here is
 * tracked and killed by pid when the scope closes.
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { probeSocket } from "../../src/daemon/socket.js"

const repo = path.resolve(import.meta.dirname, "../..")
export const cacheDir = path.join(repo, ".cache", "daemon-tests")

/** Bundles `entry` (relative to the repo) once per test run; answers the .mjs path. */
export const bundle = (entry: string, name: string): string => {
  const outfile = path.join(cacheDir, `${name}-${process.pid}.mjs`)
  if (fs.existsSync(outfile)) return outfile
  fs.mkdirSync(cacheDir, { recursive: true })
  // Bundles of earlier runs (named by their pid) go once they are an hour old.
  for (const old of fs.readdirSync(cacheDir)) {
    const file = path.join(cacheDir, old)
    if (old.endsWith(".mjs") && Date.now() - fs.statSync(file).mtimeMs > 3_600_000) fs.rmSync(file, { force: true })
  }
  const result = spawnSync(
    path.join(repo, "node_modules", ".bin", "esbuild"),
    [
      entry,
      "--bundle",
      "--platform=node",
      "--format=esm",
      "--packages=external",
      `--outfile=${outfile}`,
      "--log-level=error"
    ],
    { cwd: repo, encoding: "utf8" }
  )
  if (result.status !== 0) throw new Error(`esbuild ${entry} failed: ${result.stderr}`)
  return outfile
}

export const cliBundle = () => bundle("src/cli/main.ts", "banger")
export const fixtureBundle = () => bundle("test/support/daemon-fixture.ts", "daemon-fixture")

export interface Running {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Promise<number | null>
}

const track = (child: ChildProcess): Running => {
  let output = ""
  child.stdout?.on("data", (chunk) => (output += chunk))
  child.stderr?.on("data", (chunk) => (output += chunk))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return { child, output: () => output, exited }
}

/** Starts a process and kills it (SIGKILL, by its pid) when the scope closes, unless it already ended. */
export const startProcess = (file: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}) =>
  Effect.acquireRelease(
    Effect.sync(() => track(spawn(process.execPath, [file, ...args], { env: { ...process.env, ...env } }))),
    (running) =>
      Effect.sync(() => {
        if (running.child.exitCode === null && running.child.signalCode === null) running.child.kill("SIGKILL")
      })
  )

export interface FixtureOptions {
  readonly stateDir: string
  readonly socket: string
  readonly steps?: number
  readonly stepMs?: number
  readonly layers?: number
  readonly group?: string
}

/** The fixture daemon; waits until its socket answers. */
export const startFixtureDaemon = (options: FixtureOptions) =>
  Effect.gen(function* () {
    const running = yield* startProcess(fixtureBundle(), [], {
      FIXTURE_STATE_DIR: options.stateDir,
      FIXTURE_SOCKET: options.socket,
      FIXTURE_STEPS: String(options.steps ?? 5),
      FIXTURE_STEP_MS: String(options.stepMs ?? 20),
      FIXTURE_LAYERS: String(options.layers ?? 2),
      FIXTURE_GROUP: options.group ?? ""
    })
    const deadline = Date.now() + 15_000
    while ((yield* probeSocket(options.socket)) !== "live") {
      if (running.child.exitCode !== null || Date.now() > deadline) {
        return yield* Effect.dieMessage(`fixture daemon did not start; output: ${running.output()}`)
      }
      yield* Effect.sleep("20 millis")
    }
    return running
  })

/** Polls `condition` every 20 ms, for at most `timeoutMs`. */
export const waitFor = (condition: () => boolean, what: string, running?: Running, timeoutMs = 15_000) =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMs
    while (!condition()) {
      if (Date.now() > deadline) {
        return yield* Effect.dieMessage(
          `timed out waiting for ${what}${running ? `; output: ${running.output()}` : ""}`
        )
      }
      yield* Effect.sleep("20 millis")
    }
  })

/** Runs the bundled CLI to completion. */
export const runCli = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000) =>
  Effect.promise(
    () =>
      new Promise<{ code: number | null; stdout: string; stderr: string; millis: number }>((resolve) => {
        const started = Date.now()
        const child = spawn(process.execPath, [cliBundle(), ...args], { env: { ...process.env, ...env } })
        let stdout = ""
        let stderr = ""
        child.stdout.on("data", (chunk) => (stdout += chunk))
        child.stderr.on("data", (chunk) => (stderr += chunk))
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
        child.once("exit", (code) => {
          clearTimeout(timer)
          resolve({ code, stdout, stderr, millis: Date.now() - started })
        })
      })
  )
