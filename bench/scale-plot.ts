/**
 * The scale bench's plot as a standalone SVG (no dependency): wall time, and memory, against the
 * image's entry count (log scale), banger against the toolchain, with the issue's memory goals.
 */

export interface PlotPoint {
  readonly name: string
  readonly entries: number
  readonly bangerMs: number
  readonly toolchainMs: number
  readonly bangerPeakRss: number
  readonly bangerRssAfter: number
  readonly toolchainPeakRss: number
}

interface Series {
  readonly label: string
  readonly color: string
  readonly dashed?: boolean
  readonly values: ReadonlyArray<number>
}

const W = 460
const H = 320
const M = { left: 56, right: 16, top: 34, bottom: 46 }
const MiB = 1024 * 1024

const esc = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

/** 1, 2, 5 × 10^n steps giving about five ticks up to `max`. */
const niceStep = (max: number) => {
  const raw = max / 5
  const power = 10 ** Math.floor(Math.log10(raw))
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw)!
}

const panel = (
  x0: number,
  title: string,
  unit: string,
  points: ReadonlyArray<PlotPoint>,
  series: ReadonlyArray<Series>,
  goals: ReadonlyArray<readonly [value: number, label: string]>
) => {
  const plotW = W - M.left - M.right
  const plotH = H - M.top - M.bottom
  const logMin = Math.floor(Math.log10(Math.min(...points.map((p) => p.entries))))
  const logMax = Math.ceil(Math.log10(Math.max(...points.map((p) => p.entries))))
  const span = Math.max(1, logMax - logMin)
  const yMaxRaw = Math.max(...series.flatMap((s) => s.values), ...goals.map(([value]) => value)) * 1.1
  const step = niceStep(yMaxRaw)
  const yMax = Math.ceil(yMaxRaw / step) * step
  const x = (entries: number) => +(x0 + M.left + ((Math.log10(entries) - logMin) / span) * plotW).toFixed(1)
  const y = (value: number) => +(M.top + plotH - (value / yMax) * plotH).toFixed(1)
  const out: Array<string> = [
    `<text x="${x0 + M.left + plotW / 2}" y="20" text-anchor="middle" font-weight="bold">${esc(title)}</text>`,
    `<rect x="${x0 + M.left}" y="${M.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`
  ]
  for (let value = 0; value <= yMax + 1e-9; value += step) {
    out.push(
      `<line x1="${x0 + M.left}" x2="${x0 + M.left + plotW}" y1="${y(value)}" y2="${y(value)}" stroke="#eee"/>`,
      `<text x="${x0 + M.left - 6}" y="${y(value) + 4}" text-anchor="end">${+value.toFixed(2)}</text>`
    )
  }
  for (let power = logMin; power <= logMax; power++) {
    const label = power >= 6 ? `${10 ** (power - 6)}M` : power >= 3 ? `${10 ** (power - 3)}k` : `${10 ** power}`
    out.push(
      `<line x1="${x(10 ** power)}" x2="${x(10 ** power)}" y1="${M.top}" y2="${M.top + plotH}" stroke="#eee"/>`,
      `<text x="${x(10 ** power)}" y="${M.top + plotH + 16}" text-anchor="middle">${label}</text>`
    )
  }
  out.push(
    `<text x="${x0 + M.left + plotW / 2}" y="${H - 8}" text-anchor="middle">entries in the image (log scale)</text>`,
    `<text transform="translate(${x0 + 14} ${M.top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(unit)}</text>`
  )
  for (const [value, label] of goals) {
    out.push(
      `<line x1="${x0 + M.left}" x2="${x0 + M.left + plotW}" y1="${y(value)}" y2="${y(value)}" stroke="#c00" stroke-dasharray="2 3"/>`,
      `<text x="${x0 + M.left + plotW - 4}" y="${y(value) - 4}" text-anchor="end" fill="#c00">${esc(label)}</text>`
    )
  }
  series.forEach((s, index) => {
    const coords = points.map((p, i) => `${x(p.entries).toFixed(1)},${y(s.values[i]!).toFixed(1)}`)
    out.push(
      `<polyline points="${coords.join(" ")}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
      ...coords.map((c) => `<circle cx="${c.split(",")[0]}" cy="${c.split(",")[1]}" r="3.5" fill="${s.color}"/>`),
      `<line x1="${x0 + M.left + 10}" x2="${x0 + M.left + 34}" y1="${M.top + 14 + index * 16}" y2="${M.top + 14 + index * 16}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
      `<text x="${x0 + M.left + 40}" y="${M.top + 18 + index * 16}">${esc(s.label)}</text>`
    )
  })
  for (const p of points) {
    out.push(
      `<text x="${x(p.entries)}" y="${M.top + plotH - 6}" text-anchor="middle" fill="#666" font-size="10">${esc(p.name)}</text>`
    )
  }
  return out
}

export const scalePlotSvg = (points: ReadonlyArray<PlotPoint>, caption: string) => {
  const sorted = [...points].sort((a, b) => a.entries - b.entries)
  const body = [
    ...panel(
      0,
      "Cold pull, wall time",
      "seconds",
      sorted,
      [
        { label: "banger", color: "#1f77b4", values: sorted.map((p) => p.bangerMs / 1000) },
        { label: "skopeo + umoci + mkfs.ext4", color: "#ff7f0e", values: sorted.map((p) => p.toolchainMs / 1000) }
      ],
      []
    ),
    ...panel(
      W,
      "Memory",
      "MiB",
      sorted,
      [
        { label: "banger daemon peak (VmHWM)", color: "#1f77b4", values: sorted.map((p) => p.bangerPeakRss / MiB) },
        {
          label: "banger daemon 5 s after (VmRSS)",
          color: "#1f77b4",
          dashed: true,
          values: sorted.map((p) => p.bangerRssAfter / MiB)
        },
        {
          label: "toolchain peak (largest step)",
          color: "#ff7f0e",
          values: sorted.map((p) => p.toolchainPeakRss / MiB)
        }
      ],
      [
        [200, "goal: peak ≤ 200 MiB"],
        [100, "goal: after ≤ 100 MiB"]
      ]
    )
  ]
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H + 20}" viewBox="0 0 ${2 * W} ${H + 20}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(`Cold pull wall time and memory against entries, banger and the toolchain (${caption})`)}</title>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...body,
    `<text x="${W}" y="${H + 14}" text-anchor="middle" fill="#666" font-size="10">${esc(caption)}</text>`,
    "</svg>",
    ""
  ].join("\n")
}
