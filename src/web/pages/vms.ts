import type { Image, Vm } from "../../rpc/schemas.js"
import { html } from "../html.js"
import {
  csrfField,
  type FieldErrors,
  formatBytes,
  formError,
  type PageContext,
  page,
  postButton,
  table,
  textField,
  when
} from "../layout.js"

const vmHref = (name: string) => `/vms/${encodeURIComponent(name)}`

/**
 * The guest's address once VM networking records one on the VM (`network.guestAddress`); until
 * then (or for a VM without a network) none.
 */
export const vmAddress = (vm: Vm): string | null => vm.network?.guestAddress ?? null

export const vmRows = (vms: ReadonlyArray<Vm>) =>
  vms.map(
    (
      vm
    ) => html`<tr><td><a href="${vmHref(vm.name)}">${vm.name}</a></td><td class="state-${vm.state === "running" ? "succeeded" : "cancelled"}">${vm.state}</td>
<td class="mono">${vmAddress(vm) ?? "—"}</td><td>${vm.image}</td><td>${vm.cpus} CPU, ${vm.memoryMib} MiB</td><td>${vm.vmm}</td></tr>`
  )

export const vmTable = (vms: ReadonlyArray<Vm>) =>
  table(["NAME", "STATE", "ADDRESS", "IMAGE", "SIZE", "VMM"], vmRows(vms), "No VMs yet.")

export const vmsPage = (
  context: PageContext,
  vms: ReadonlyArray<Vm>,
  images: ReadonlyArray<Image>,
  values: Readonly<Record<string, string>> = {},
  errors: FieldErrors = {}
) =>
  page(
    "VMs",
    html`${vmTable(vms)}
<form class="card" method="post" action="/vms/create" id="vm-form">${csrfField(context)}
<h2>Create a VM</h2>
${formError(errors)}
${textField({ name: "name", label: "Name", values, errors, required: true })}
<label>Image<span>a local image, or type a catalog image's name</span>
<input type="text" name="image" id="field-image" list="image-names" value="${values.image ?? ""}">
<datalist id="image-names">${images.map((image) => html`<option value="${image.name}">`)}</datalist>
${errors.image === undefined ? "" : html`<div class="field-error" id="error-image">${errors.image}</div>`}</label>
${textField({ name: "cpus", label: "CPUs", values, errors, placeholder: "default 1" })}
${textField({ name: "memoryMib", label: "Memory (MiB)", values, errors, placeholder: "default 512" })}
${textField({ name: "diskSize", label: "Disk size", values, errors, placeholder: "e.g. 4G; default the image's size" })}
<label>Acceleration<span>auto: KVM where the host runs KVM guests, else TCG (QEMU only)</span>
<select name="accel" id="field-accel">${(["auto", "kvm", "tcg"] as const).map(
      (accel) =>
        html`<option value="${accel}"${(values.accel ?? "auto") === accel ? html` selected` : ""}>${accel}</option>`
    )}</select>
${errors.accel === undefined ? "" : html`<div class="field-error" id="error-accel">${errors.accel}</div>`}</label>
<label class="check"><input type="checkbox" name="noNetwork" id="field-noNetwork" value="1"${values.noNetwork ? html` checked` : ""}> No network<span>no tap, address or outbound access (a daemon without CAP_NET_ADMIN needs this)</span></label>
<button type="submit" class="primary">Create and start</button>
</form>`
  )

export const vmPage = (context: PageContext, vm: Vm, consoleTail: string) => {
  const href = vmHref(vm.name)
  const address = vmAddress(vm)
  return page(
    `VM ${vm.name}`,
    html`<dl>
<dt>State</dt><dd id="vm-state">${vm.state}${vm.lastExit === null ? "" : html` <span class="muted">(${vm.lastExit})</span>`}</dd>
<dt>Address</dt><dd class="mono" id="vm-address">${address ?? "—"}</dd>
<dt>ssh</dt><dd><code id="ssh-command">${address === null ? "—" : `banger vm ssh ${vm.name}`}</code>
${address === null ? "" : html` <button type="button" data-copy="ssh-command">Copy</button>`}</dd>
<dt>Image</dt><dd><a href="/images/${encodeURIComponent(vm.image)}">${vm.image}</a></dd>
<dt>Size</dt><dd>${vm.cpus} CPU, ${vm.memoryMib} MiB, disk ${formatBytes(vm.diskBytes)}</dd>
<dt>VMM</dt><dd>${vm.vmm} <span class="muted">(${vm.vmmReason})</span>${vm.runningAccel === null ? "" : html`, ${vm.runningAccel}`}</dd>
<dt>Created</dt><dd>${when(vm.createdAt)}</dd>
<dt>Started</dt><dd>${when(vm.startedAt)}</dd>
<dt>Stopped</dt><dd>${when(vm.stoppedAt)}</dd>
</dl>
<p>${vm.state === "running" ? postButton(context, `${href}/stop`, "Stop") : postButton(context, `${href}/start`, "Start")}
<a href="${href}/delete">Delete…</a></p>
<h2>Console</h2>
<pre id="console">${consoleTail === "" ? "(empty)" : consoleTail}</pre>`
  )
}

export const deleteVmPage = (context: PageContext, vm: Vm, error?: string) =>
  page(
    `Delete VM ${vm.name}?`,
    html`${error === undefined ? "" : html`<div class="error" id="error-form">${error}</div>`}
<p>Its work disk and console log are removed${vm.state === "running" ? "; it is stopped first" : ""}.</p>
${postButton(context, `${vmHref(vm.name)}/delete`, "Delete", { danger: true, fields: { force: vm.state === "running" ? "1" : "" } })}
<a href="${vmHref(vm.name)}">Keep it</a>`
  )
