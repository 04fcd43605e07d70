/**
 * `node bench/mem-trace-report.mjs FILE [every-ms]`: a `--mem-trace` file (see mem-trace.mjs) as a
 * table, one row per interval (the sample with the highest RSS in it), plus GC counts and the
 * samples at the RSS peak.
 */
import { readFileSync } from "node:fs"

const [file, everyArg] = process.argv.slice(2)
if (!file) {
  console.error("usage: node bench/mem-trace-report.mjs FILE [every-ms]")
  process.exit(2)
}
const every = Number(everyArg ?? 250)
const { samples, gcs } = JSON.parse(readFileSync(file, "utf8"))
const columns = ["t", "rss", "heapTotal", "heapUsed", "newSpace", "external", "arrayBuffers"]
const rows = []
let bucket
for (const sample of samples) {
  const key = Math.floor(sample.t / every)
  if (bucket === undefined || bucket.key !== key) {
    bucket = { key, best: sample }
    rows.push(bucket)
  } else if (sample.rss > bucket.best.rss) bucket.best = sample
}
console.log(columns.map((c) => c.padStart(12)).join(""))
for (const { best } of rows) {
  const counts = {}
  for (const gc of gcs)
    if (Math.floor(gc.t / every) === Math.floor(best.t / every)) counts[gc.kind] = (counts[gc.kind] ?? 0) + 1
  const gcText = Object.entries(counts)
    .map(([kind, n]) => `${kind}×${n}`)
    .join(" ")
  console.log(`${columns.map((c) => String(best[c]).padStart(12)).join("")}  ${gcText}`)
}
const peak = samples.reduce((a, b) => (b.rss > a.rss ? b : a))
console.log("peak:", peak)
const byKind = {}
for (const gc of gcs) {
  byKind[gc.kind] ??= { count: 0, ms: 0 }
  byKind[gc.kind].count++
  byKind[gc.kind].ms += gc.ms
}
console.log("gcs:", byKind)
