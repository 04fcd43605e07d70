import type { Image, Kernel } from "../../rpc/schemas.js"
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

const imageHref = (name: string) => `/images/${encodeURIComponent(name)}`

export const imageRows = (images: ReadonlyArray<Image>) =>
  images.map(
    (
      image
    ) => html`<tr><td><a href="${imageHref(image.name)}">${image.name}</a></td><td class="mono">${image.ref ?? "registered"}</td>
<td>${formatBytes(image.sizeBytes)}</td><td>${image.managed ? "managed" : "unmanaged"}</td><td>${when(image.createdAt)}</td></tr>`
  )

export const imageTable = (images: ReadonlyArray<Image>) =>
  table(["NAME", "REF", "SIZE", "FILES", "CREATED"], imageRows(images), "No images yet.")

export const pullForm = (
  context: PageContext,
  kernels: ReadonlyArray<Kernel>,
  values: Readonly<Record<string, string>>,
  errors: FieldErrors
) => html`<form class="card" method="post" action="/images/pull" id="pull-form">${csrfField(context)}
<h2>Pull an image</h2>
${formError(errors)}
${textField({ name: "reference", label: "Reference or catalog name", values, errors, placeholder: "debian:bookworm, ghcr.io/org/app:1, or a catalog image", required: true })}
${textField({ name: "name", label: "Name", values, errors, placeholder: "default: from the reference (debian:bookworm → debian-bookworm)" })}
${textField({ name: "kernel", label: "Kernel", values, errors, placeholder: `a stored kernel${kernels.length > 0 ? ` (${kernels.map((kernel) => kernel.name).join(", ")})` : ""} or an absolute path; default: the catalog's` })}
${textField({ name: "initrd", label: "Initrd", values, errors, placeholder: "absolute path, with a kernel path" })}
${textField({ name: "size", label: "Size", values, errors, placeholder: "e.g. 2G; default max(tree × 1.25, 1 GiB)" })}
${textField({ name: "platform", label: "Platform", values, errors, placeholder: "default linux/amd64" })}
<button type="submit" class="primary">Pull</button>
</form>`

export const imagesPage = (
  context: PageContext,
  images: ReadonlyArray<Image>,
  kernels: ReadonlyArray<Kernel>,
  values: Readonly<Record<string, string>> = {},
  errors: FieldErrors = {}
) => page("Images", html`${imageTable(images)}${pullForm(context, kernels, values, errors)}`)

export const imagePage = (_context: PageContext, image: Image) =>
  page(
    `Image ${image.name}`,
    html`<dl>
<dt>Name</dt><dd id="image-name">${image.name}</dd>
<dt>Id</dt><dd class="mono">${image.id}</dd>
<dt>Reference</dt><dd class="mono">${image.ref ?? "—"}</dd>
<dt>Digest</dt><dd class="mono">${image.manifestDigest ?? "—"}</dd>
<dt>Platform</dt><dd>${image.platform ?? "—"}</dd>
<dt>Files</dt><dd>${image.managed ? "managed (in the store)" : "unmanaged (registered in place)"}</dd>
<dt>Size</dt><dd>${formatBytes(image.sizeBytes)}</dd>
<dt>Rootfs</dt><dd class="mono">${image.rootfs}</dd>
<dt>Kernel</dt><dd class="mono">${image.kernelName ?? image.kernel}</dd>
<dt>Initrd</dt><dd class="mono">${image.initrd ?? "—"}</dd>
<dt>Modules</dt><dd class="mono">${image.modules ?? "—"}</dd>
<dt>Entrypoint</dt><dd class="mono">${[...image.runtime.entrypoint, ...image.runtime.cmd].join(" ") || "—"}</dd>
<dt>Created</dt><dd>${when(image.createdAt)}</dd>
</dl>
<p><a href="/vms?image=${encodeURIComponent(image.name)}">Create a VM from it</a> ·
<a href="${imageHref(image.name)}/delete">Delete…</a></p>`
  )

export const deleteImagePage = (context: PageContext, image: Image, error?: string) =>
  page(
    `Delete image ${image.name}?`,
    html`${error === undefined ? "" : html`<div class="error" id="error-form">${error}</div>`}
<p>${image.managed ? "Its row and its files in the store are removed." : "Only its row is removed; your files stay where they are."}</p>
${postButton(context, `${imageHref(image.name)}/delete`, "Delete", { danger: true })} <a href="${imageHref(image.name)}">Keep it</a>`
  )
