/**
 * Preloaded (`--import`, through NODE_OPTIONS: a node option, not a V8 flag, so the bundle's code
 * cache is still accepted) by `npm run bench -- --mem-trace DIR`: samples the daemon's memory
 * every 10 ms (RSS, V8 heap and young generation, external and ArrayBuffer bytes) and records each
 * GC, then writes `DIR/<pid>-daemon.json` when it exits. `node bench/mem-trace-report.mjs FILE`
 * summarizes one.
 */
import { writeFileSync } from "node:fs"
import { PerformanceObserver } from "node:perf_hooks"
import * as v8 from "node:v8"

const dir = process.env.BANGER_BENCH_MEM_TRACE
// Only the daemon: the CLI is not what the bench's peak RSS is about.
if (dir && process.argv.includes("daemon")) {
  const started = performance.now()
  const samples = []
  const gcs = []
  const MiB = 1024 * 1024
  const round = (bytes) => Math.round((bytes / MiB) * 10) / 10
  const timer = setInterval(() => {
    const usage = process.memoryUsage()
    const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((space) => [space.space_name, space]))
    samples.push({
      t: Math.round(performance.now() - started),
      rss: round(usage.rss),
      heapTotal: round(usage.heapTotal),
      heapUsed: round(usage.heapUsed),
      newSpace: round(spaces.new_space?.space_size ?? 0),
      external: round(usage.external),
      arrayBuffers: round(usage.arrayBuffers)
    })
  }, 10)
  timer.unref()
  const kinds = { 1: "scavenge", 2: "mark-compact", 4: "incremental", 8: "weak-callbacks", 16: "minor-mc" }
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gcs.push({
        t: Math.round(entry.startTime - started),
        kind: kinds[entry.detail?.kind] ?? String(entry.detail?.kind),
        ms: Math.round(entry.duration * 10) / 10
      })
    }
  }).observe({ entryTypes: ["gc"] })
  process.on("exit", () => {
    writeFileSync(`${dir}/${process.pid}-daemon.json`, JSON.stringify({ samples, gcs }))
  })
}
