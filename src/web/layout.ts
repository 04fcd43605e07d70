import { formatBytes } from "../cli/output.js"
import { type Html, html, type Interpolation } from "./html.js"

export { formatBytes }

/** What every signed-in page knows: the session's CSRF token for its forms. */
export interface PageContext {
  readonly csrf: string
}

/** Errors shown next to the form field they are about; `form` for the rest. */
export type FieldErrors = Readonly<Record<string, string>>

export const page = (title: string, body: Interpolation, options: { readonly nav?: boolean } = {}): Html =>
  html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · banger</title>
<link rel="stylesheet" href="/static/app.css">
</head>
<body>
${
  options.nav === false
    ? html`<header><strong>banger</strong></header>`
    : html`<header><strong>banger</strong>
<a href="/">Dashboard</a> <a href="/vms">VMs</a> <a href="/images">Images</a> <a href="/catalog">Catalog</a></header>`
}
<main>
<h1>${title}</h1>
${body}
</main>
<script src="/static/app.js"></script>
</body>
</html>
`

export const csrfField = (context: PageContext) => html`<input type="hidden" name="_csrf" value="${context.csrf}">`

/** A button that POSTs to `action` with the CSRF token. */
export const postButton = (
  context: PageContext,
  action: string,
  label: string,
  options: { readonly danger?: boolean; readonly fields?: Readonly<Record<string, string>> } = {}
) =>
  html`<form class="inline" method="post" action="${action}">${csrfField(context)}${Object.entries(
    options.fields ?? {}
  ).map(
    ([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`
  )}<button type="submit" class="${options.danger ? "danger" : ""}">${label}</button></form>`

export const textField = (spec: {
  readonly name: string
  readonly label: string
  readonly values: Readonly<Record<string, string>>
  readonly errors: FieldErrors
  readonly placeholder?: string
  readonly type?: "text" | "number"
  readonly required?: boolean
}) => {
  const error = spec.errors[spec.name]
  return html`<label>${spec.label}<span>${spec.placeholder ?? ""}</span>
<input type="${spec.type ?? "text"}" name="${spec.name}" id="field-${spec.name}" value="${spec.values[spec.name] ?? ""}"${
    spec.required ? html` required` : ""
  } aria-invalid="${error !== undefined}">
${error === undefined ? "" : html`<div class="field-error" id="error-${spec.name}">${error}</div>`}</label>`
}

export const formError = (errors: FieldErrors) =>
  errors.form === undefined ? "" : html`<div class="error" id="error-form">${errors.form}</div>`

export const table = (headers: ReadonlyArray<string>, rows: ReadonlyArray<Interpolation>, empty: string) =>
  rows.length === 0
    ? html`<p class="muted">${empty}</p>`
    : html`<div class="table"><table><thead><tr>${headers.map((header) => html`<th>${header}</th>`)}</tr></thead>
<tbody>${rows}</tbody></table></div>`

/** `2026-12-05T21:04:04.123Z` → `2026-12-05 21:04:04`. */
export const when = (iso: string | null) => (iso === null ? "—" : iso.replace("T", " ").replace(/\.\d+Z$/, "Z"))
