import { Effect, Layer } from "effect"
import { type PullEvent, PullProgress, type PullStage, retryLine } from "../pipelines/pull/progress.js"
import { formatBytes } from "./output.js"

interface LayerState {
  digest: string
  done: number
  total: number
  cached: boolean
}

/** What each stage is doing, as a person reading a log would say it. */
export const stageText: Record<PullStage, string> = {
  resolve: "resolving the reference",
  fetch: "fetching layers",
  flatten: "flattening layers",
  size: "sizing the filesystem",
  "write-ext4": "writing the ext4 filesystem",
  "stage-boot": "staging the kernel and initrd",
  publish: "publishing",
  "work-disk": "making the work disk",
  configure: "configuring the guest",
  boot: "booting",
  ready: "waiting for the guest to be ready",
  ssh: "waiting for the guest's sshd",
  inspect: "inspecting the sources",
  copy: "copying into the store",
  extract: "extracting the kernel"
}

const shortDigest = (digest: string) => digest.replace(/^sha256:/, "").slice(0, 12)

const bar = (done: number, total: number, width = 24) => {
  const ratio = total > 0 ? Math.min(1, done / total) : 1
  const filled = Math.round(ratio * width)
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${String(Math.round(ratio * 100)).padStart(3)}%`
}

const layerLine = (index: number, count: number, layer: LayerState) => {
  const label = `layer ${index + 1}/${count} ${shortDigest(layer.digest)}`
  if (layer.cached) return `${label} cached (${formatBytes(layer.total)})`
  return `${label} ${bar(layer.done, layer.total)} ${formatBytes(layer.done)} / ${formatBytes(layer.total)}`
}

/** A live multi-line bar on a terminal: redrawn in place, at most ten times a second. */
const ttyRenderer = (stream: NodeJS.WriteStream) => {
  let layers: Array<LayerState> = []
  let count = 0
  let stage: PullStage | undefined
  let phase = ""
  let drawnLines = 0
  let lastDraw = 0
  const draw = (force: boolean) => {
    const now = Date.now()
    if (!force && now - lastDraw < 100) return
    lastDraw = now
    const lines = [
      `${phase}${stage === undefined ? "" : stageText[stage]}…`,
      ...layers.flatMap((layer, index) => (layer ? [layerLine(index, count, layer)] : []))
    ]
    const up = drawnLines > 0 ? `\x1b[${drawnLines}A` : ""
    stream.write(`${up}${lines.map((line) => `\x1b[2K${line}`).join("\n")}\n`)
    drawnLines = lines.length
  }
  return (event: PullEvent) => {
    if (event._tag === "PhaseStarted") {
      // The finished phase's lines stay on screen; the new phase draws below them.
      phase = `${event.phase} ${event.name}: `
      layers = []
      count = 0
      drawnLines = 0
      return
    }
    if (event._tag === "StageStarted") {
      stage = event.stage
      draw(true)
      return
    }
    if (event._tag === "Retrying") {
      // Printed above the live lines, which redraw below it: the retry stays in the scrollback.
      const up = drawnLines > 0 ? `\x1b[${drawnLines}A` : ""
      stream.write(`${up}\x1b[2K${retryLine(event)}\x1b[J\n`)
      drawnLines = 0
      draw(true)
      return
    }
    count = event.count
    layers[event.index] = { digest: event.digest, done: event.bytesDone, total: event.bytesTotal, cached: event.cached }
    draw(event.bytesDone >= event.bytesTotal)
  }
}

/** One `banger: …` line per phase, stage and finished layer: readable in logs and CI output. */
const plainRenderer = (stream: NodeJS.WriteStream) => {
  let finished = new Set<number>()
  const line = (text: string) => stream.write(`banger: ${text}\n`)
  return (event: PullEvent) => {
    if (event._tag === "PhaseStarted") {
      finished = new Set()
      line(`${event.phase} ${event.name}`)
    } else if (event._tag === "StageStarted") {
      line(`${stageText[event.stage]}…`)
    } else if (event._tag === "Retrying") {
      line(retryLine(event))
    } else if (event.bytesDone >= event.bytesTotal && !finished.has(event.index)) {
      finished.add(event.index)
      const layer = { digest: event.digest, done: event.bytesDone, total: event.bytesTotal, cached: event.cached }
      line(layerLine(event.index, event.count, layer))
    }
  }
}

export const stderrPullProgress = Layer.sync(PullProgress, () => {
  const stream = process.stderr
  const render = stream.isTTY ? ttyRenderer(stream) : plainRenderer(stream)
  return { report: (event: PullEvent) => Effect.sync(() => render(event)) }
})
