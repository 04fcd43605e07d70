import { describeResult } from "../../cli/daemon-client.js"
import { retryLine } from "../../pipelines/pull/progress.js"
import type { OperationStatus } from "../../rpc/schemas.js"
import { html } from "../html.js"
import { formatBytes, type PageContext, page, postButton, table, when } from "../layout.js"

/** Whole percent of bytes fetched so far; 0 until sizes are known. */
export const percentDone = (status: OperationStatus) =>
  status.progress.bytesTotal > 0 ? Math.floor((status.progress.bytesDone * 100) / status.progress.bytesTotal) : 0

/** Layers fully fetched (or found in the cache), as the CLI counts them. */
const finishedLayers = (status: OperationStatus) =>
  status.progress.layers.filter((layer) => layer.bytesDone >= layer.bytesTotal).length

const stageText = (status: OperationStatus) =>
  `${status.phase ? `${status.phase.phase} ${status.phase.name}: ` : ""}${status.stage ?? "starting"}`

export const stateLabel = (state: string) => html`<span class="state-${state}">${state}</span>`

export const operationRows = (operations: ReadonlyArray<OperationStatus>) =>
  operations.map(
    (op) => html`<tr><td class="mono"><a href="/ops/${op.id}">${op.id}</a></td><td>${op.kind}</td><td>${op.target}</td>
<td>${stateLabel(op.state)}</td><td>${op.state === "running" ? stageText(op) : (op.error?.message ?? "")}</td><td>${when(op.startedAt)}</td></tr>`
  )

export const operationTable = (operations: ReadonlyArray<OperationStatus>) =>
  table(["ID", "KIND", "TARGET", "STATE", "STAGE / ERROR", "STARTED"], operationRows(operations), "No operations.")

export const operationPage = (context: PageContext, status: OperationStatus) => {
  const p = status.progress
  const running = status.state === "running"
  const outcome =
    status.result !== null
      ? html`<div class="card" id="op-result">Result: ${resultLink(status)}</div>`
      : status.error !== null
        ? html`<div class="error" id="op-error"><b>${status.error._tag}</b>: ${status.error.message}</div>`
        : ""
  return page(
    `Operation ${status.id}`,
    html`<div id="op" data-state="${status.state}" data-events="/ops/${status.id}/events">
<dl>
<dt>Kind</dt><dd>${status.kind}</dd>
<dt>Target</dt><dd>${status.target}</dd>
<dt>State</dt><dd id="op-state" class="state-${status.state}">${status.state}</dd>
<dt>Stage</dt><dd id="op-stage">${stageText(status)}</dd>
<dt>Last retry</dt><dd id="op-retry">${status.retry === null ? "none" : retryLine(status.retry)}</dd>
<dt>Progress</dt><dd><progress id="op-bar" max="100" value="${percentDone(status)}"></progress>
<span id="op-percent">${percentDone(status)} %</span><br>
<span id="op-bytes" class="muted">${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)} (${finishedLayers(status)}/${p.layerCount} layers)</span></dd>
<dt>Started</dt><dd>${when(status.startedAt)}</dd>
<dt>Ended</dt><dd>${when(status.endedAt)}</dd>
</dl>
${running ? postButton(context, `/ops/${status.id}/cancel`, "Cancel", { danger: true }) : ""}
${outcome}
</div>`
  )
}

const resultLink = (status: OperationStatus) => {
  const result = status.result!
  const text = describeResult(result)
  if (status.kind === "image.pull" || status.kind === "image.register" || status.kind === "image.promote")
    return html`<a href="/images/${encodeURIComponent(status.target)}">${text}</a>`
  if (status.kind.startsWith("vm.")) return html`<a href="/vms/${encodeURIComponent(status.target)}">${text}</a>`
  return text
}
