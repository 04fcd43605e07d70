/**
 * `banger image pull` through the real CLI and daemon against a misbehaving registry (one
 * endpoint per fault, test/support/bad-registry.ts). The daemon runs with second-scale patience
 * (`--idle-timeout 1s --stall-budget 3s --resolve-timeout 3s`) so a stall costs seconds, not
 * minutes. Each case checks the outcome, how long it took, and that the state dir holds nothing
 * but published images afterwards.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type BadRegistry, type Fault, startBadRegistry } from "../support/bad-registry.js"
import {
  type CliResult,
  errorLines,
  expectOneLineError,
  type RunningDaemon,
  runBanger,
  startBangerDaemon
} from "../support/banger-cli.js"
import { findCloudKernel } from "../support/qemu.js"
import { imageRows, leftovers, nothingLeft } from "../support/state-leftovers.js"

let bad: BadRegistry
let work: string
let state: string
let daemon: RunningDaemon
let kernel: string

beforeAll(async () => {
  bad = await startBadRegistry({ layerBytes: 256 << 10, slowPieces: 8, pieceIntervalMs: 500 })
  work = fs.mkdtempSync(path.join(os.tmpdir(), "banger-faults-"))
  state = path.join(work, "state")
  kernel = (await findCloudKernel()).kernel
  daemon = await startBangerDaemon(state, {
    extraArgs: ["--idle-timeout", "1s", "--stall-budget", "3s", "--resolve-timeout", "3s"]
  })
}, 60_000)

afterAll(async () => {
  if (daemon) {
    const stopped = await daemon.stop()
    expect(stopped.code).toBe(0)
  }
  await bad?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

const pull = async (fault: Fault): Promise<{ result: CliResult; seconds: number }> => {
  const started = Date.now()
  const result = await runBanger(["--state-dir", state, "image", "pull", `${bad.host}/${fault}:1`, "--kernel", kernel])
  return { result, seconds: (Date.now() - started) / 1000 }
}

const pulled = (fault: Fault) => imageRows(state).some((row) => row.name === `${fault}-1`)

/** The layer blob neither cached nor half-written. */
const blobAbsent = (fault: Fault) =>
  !fs.existsSync(path.join(state, "cache", "blobs", ...bad.images.get(fault)!.layerDigest.split(":")))

const failsWith = async (fault: Fault, pattern: RegExp, maxSeconds: number, minSeconds = 0) => {
  const { result, seconds } = await pull(fault)
  expectOneLineError(result, pattern)
  expect(seconds).toBeGreaterThanOrEqual(minSeconds)
  expect(seconds).toBeLessThan(maxSeconds)
  expect(pulled(fault)).toBe(false)
  expect(blobAbsent(fault)).toBe(true)
  expect(leftovers(state)).toEqual(nothingLeft)
  return result
}

const succeeds = async (fault: Fault, maxSeconds: number) => {
  const { result, seconds } = await pull(fault)
  expect(errorLines(result.stderr)).toEqual([])
  expect(result.code).toBe(0)
  expect(seconds).toBeLessThan(maxSeconds)
  expect(pulled(fault)).toBe(true)
  expect(leftovers(state)).toEqual(nothingLeft)
  return { result, seconds }
}

describe("the daemon's transfer flags", () => {
  it("refuses a bad or zero duration with one line naming the flag", async () => {
    const elsewhere = path.join(work, "unused-state")
    expectOneLineError(
      await runBanger(["--state-dir", elsewhere, "daemon", "--stall-budget", "soon"]),
      /^banger: .*--stall-budget: invalid duration "soon"/
    )
    expectOneLineError(
      await runBanger(["--state-dir", elsewhere, "daemon", "--idle-timeout", "0s"]),
      /^banger: .*--idle-timeout: must be more than zero$/
    )
  })
})

describe("image pull against a misbehaving registry", () => {
  it("a well-behaved endpoint pulls (the harness itself works)", async () => {
    await succeeds("ok", 60)
  })

  it("a blob that stalls after its headers is given up on once the stall budget is spent", async () => {
    const result = await failsWith(
      "stall-headers",
      /^banger: registry error .*blob sha256:[0-9a-f]{64} stalled after 0 of \d+ bytes: no data for 1s \(3 tries; the 3s stall budget is spent\)$/,
      20,
      3
    )
    expect(result.stderr).toContain("layer 1/1: no data for 1s, retrying (2 of 4)")
    expect(result.stderr).toContain("layer 1/1: no data for 1s, retrying (3 of 4)")
  })

  it("a blob that stalls mid-body on every connection resumes with Range, then stops at the budget", async () => {
    const before = bad.requests.length
    await failsWith(
      "stall-mid",
      /blob sha256:[0-9a-f]{64} stalled after [1-9]\d* of \d+ bytes: no data for 1s \(3 tries; the 3s stall budget is spent\)$/,
      20,
      3
    )
    const layer = bad.images.get("stall-mid")!.layerDigest
    const ranges = bad.requests.slice(before).filter((request) => request.path.endsWith(layer))
    expect(ranges[0]!.range).toBeUndefined()
    expect(ranges.slice(1).every((request) => /^bytes=[1-9]\d*-$/.test(request.range ?? ""))).toBe(true)
  })

  it("a blob that stalls once resumes from the bytes received and the retry shows in the progress", async () => {
    const { result } = await succeeds("stall-once", 30)
    expect(result.stderr).toContain("banger: layer 1/1: no data for 1s, retrying (2 of 4)")
    const layer = bad.images.get("stall-once")!
    const gets = bad.requests.filter((request) => request.path.endsWith(layer.layerDigest))
    expect(gets.map((request) => request.range)).toEqual([undefined, `bytes=${Math.floor(layer.layer.length / 2)}-`])
  })

  it("a slow but steady blob (4 s at one piece every 0.5 s, idle timeout 1 s) is never timed out", async () => {
    const { result, seconds } = await succeeds("slow", 60)
    expect(seconds).toBeGreaterThan(3.5)
    expect(result.stderr).not.toContain("retrying")
  })

  it("a blob cut at the same byte every time gives up after bounded reconnects without progress", async () => {
    await failsWith(
      "cut",
      /^banger: registry error .*connection lost after \d+ of \d+ bytes of blob sha256:[0-9a-f]{64}: .*\(gave up after 4 reconnects\)$/,
      30
    )
  })

  it("a blob longer than declared is stopped at the declared size", async () => {
    await failsWith(
      "long",
      /^banger: sha256:[0-9a-f]{64}: the registry sent more than the \d+ bytes the manifest declares$/,
      20
    )
  })

  it("a blob shorter than declared says how many bytes came, with one digest", async () => {
    const size = bad.images.get("short")!.layer.length
    const result = await failsWith(
      "short",
      new RegExp(
        `^banger: sha256:[0-9a-f]{64}: the registry sent ${Math.floor(size / 2)} of the ${size} bytes the manifest declares for this blob$`
      ),
      20
    )
    expect(result.stderr.match(/sha256:/g)).toHaveLength(1)
  })

  it("429 with Retry-After is retried to success", async () => {
    const { result } = await succeeds("too-many-requests", 30)
    expect(result.stderr).toMatch(/banger: resolve: 127\.0\.0\.1:\d+ answered HTTP 429, retrying \(2 of 4\)/)
  })

  it("503 then success is retried to success", async () => {
    const { result } = await succeeds("unavailable", 30)
    expect(result.stderr).toMatch(
      /banger: layer 1\/1: 127\.0\.0\.1:\d+ answered HTTP 503 \(UNAVAILABLE: try later\), retrying \(3 of 4\)/
    )
  })

  it("a manifest body that stalls is timed out like a blob and retried", async () => {
    const { result } = await succeeds("stall-manifest-once", 30)
    expect(result.stderr).toMatch(/banger: resolve: no data for 1s reading .*, retrying \(2 of 4\)/)
  })

  it("a huge manifest is refused at the 4 MiB limit without reading it", async () => {
    await failsWith("huge-manifest", /^banger: registry error .*is 500000000 bytes, over the 4194304 limit$/, 15)
  })

  it("a huge config without a Content-Length is stopped at the 16 MiB limit", async () => {
    await failsWith(
      "huge-config",
      /^banger: registry error .*config blob sha256:[0-9a-f]{64} is over the 16777216 byte limit$/,
      20
    )
  })

  it("a redirect loop ends", async () => {
    await failsWith("redirect-loop", /^banger: registry error .*too many redirects/, 15)
  })

  it("a manifest that never answers is bounded by --resolve-timeout, retries shown meanwhile", async () => {
    const result = await failsWith(
      "never-answers",
      /^banger: registry error .*127\.0\.0\.1:\d+ did not serve the manifest and config within 3s \(all retries together\)$/,
      15,
      2.9
    )
    expect(result.stderr).toMatch(/banger: resolve: no response from 127\.0\.0\.1:\d+ within 1s, retrying \(2 of 4\)/)
  })
})
