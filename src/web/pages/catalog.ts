import type { CatalogListing, LocalState } from "../../domain/catalog-listing.js"
import { html } from "../html.js"
import { type PageContext, page, postButton, table } from "../layout.js"

const localLabel: Record<LocalState, string> = { no: "no", yes: "yes", "other-ref": "yes, other ref" }

export const catalogPage = (context: PageContext, listing: CatalogListing) =>
  page(
    "Catalog",
    html`<p class="muted">From <span class="mono">${listing.source}</span>; defaults marked *.</p>
<h2>Images</h2>
${table(
  ["NAME", "REF", "KERNEL", "LOCAL", "DESCRIPTION", ""],
  listing.images.map(
    (
      image
    ) => html`<tr><td>${image.name}${image.default ? " *" : ""}</td><td class="mono">${image.ref}</td><td>${image.kernel}</td>
<td>${localLabel[image.local]}</td><td>${image.description}</td>
<td>${image.local === "no" ? postButton(context, "/images/pull", "Pull", { fields: { reference: image.name } }) : ""}</td></tr>`
  ),
  "The catalog names no images."
)}
<h2>Kernels</h2>
${table(
  ["NAME", "REF", "ARCH", "LOCAL", "DESCRIPTION", ""],
  listing.kernels.map(
    (
      kernel
    ) => html`<tr><td>${kernel.name}${kernel.default ? " *" : ""}</td><td class="mono">${kernel.ref}</td><td>${kernel.arch}</td>
<td>${localLabel[kernel.local]}</td><td>${kernel.description}</td>
<td>${kernel.local === "no" ? postButton(context, "/kernels/pull", "Pull", { fields: { reference: kernel.name } }) : ""}</td></tr>`
  ),
  "The catalog names no kernels."
)}`
  )
