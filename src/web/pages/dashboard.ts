import type { DoctorCheck, Image, Kernel, OperationStatus, Vm } from "../../rpc/schemas.js"
import { html } from "../html.js"
import { page, table, when } from "../layout.js"
import { imageTable } from "./images.js"
import { operationTable } from "./operation.js"
import { vmTable } from "./vms.js"

export interface DashboardData {
  readonly vms: ReadonlyArray<Vm>
  readonly images: ReadonlyArray<Image>
  readonly kernels: ReadonlyArray<Kernel>
  readonly operations: ReadonlyArray<OperationStatus>
  readonly doctor: ReadonlyArray<DoctorCheck>
}

/** Running operations and the most recent finished ones. */
const RECENT_OPERATIONS = 10

export const dashboardPage = (data: DashboardData) => {
  const running = data.operations.filter((op) => op.state === "running")
  const recent = data.operations.filter((op) => op.state !== "running").slice(0, RECENT_OPERATIONS)
  const count = (status: DoctorCheck["status"]) => data.doctor.filter((check) => check.status === status).length
  const problems = data.doctor.filter((check) => check.status !== "ok")
  return page(
    "Dashboard",
    html`<div class="grid">
<div class="card"><b>${data.vms.filter((vm) => vm.state === "running").length}/${data.vms.length}</b>VMs running</div>
<div class="card"><b>${data.images.length}</b>images</div>
<div class="card"><b>${data.kernels.length}</b>kernels</div>
<div class="card"><b>${running.length}</b>operations running</div>
<div class="card" id="doctor-summary"><b><span class="status-ok">${count("ok")}</span> / <span class="status-warn">${count("warn")}</span> / <span class="status-fail">${count("fail")}</span></b>doctor ok / warn / fail</div>
</div>
<h2>VMs</h2>${vmTable(data.vms)}
<h2>Images</h2>${imageTable(data.images)}
<h2>Kernels</h2>${table(
      ["NAME", "VERSION", "FORMAT", "REF", "CREATED"],
      data.kernels.map(
        (kernel) =>
          html`<tr><td>${kernel.name}</td><td>${kernel.version ?? "—"}</td><td>${kernel.format ?? "—"}</td><td class="mono">${kernel.ref ?? "registered"}</td><td>${when(kernel.createdAt)}</td></tr>`
      ),
      "No kernels yet."
    )}
<h2>Running operations</h2>${operationTable(running)}
<h2>Recent operations</h2>${operationTable(recent)}
<h2>Doctor</h2>${
      problems.length === 0
        ? html`<p class="status-ok">Every check passed.</p>`
        : table(
            ["CHECK", "STATUS", "DETAIL", "FIX"],
            problems.map(
              (check) =>
                html`<tr><td>${check.name}</td><td class="status-${check.status}">${check.status}</td><td>${check.detail}</td><td>${check.fix ?? ""}</td></tr>`
            ),
            ""
          )
    }`
  )
}

export const messagePage = (title: string, message: string, options: { readonly nav?: boolean } = {}) =>
  page(title, html`<p class="error" id="error-form">${message}</p>`, options)
