/**
 * The one way the UI makes HTML: a tagged template that escapes every interpolated value unless
 * it is already `Html` (made by this template or `unsafeRaw`). Image names, refs and error
 * messages are user input, so nothing reaches a page without passing through here.
 */

const HTML = Symbol.for("banger/web/Html")

export interface Html {
  readonly [HTML]: true
  readonly value: string
}

const make = (value: string): Html => ({ [HTML]: true, value })

const isHtml = (value: unknown): value is Html => typeof value === "object" && value !== null && HTML in value

const entities: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
  "`": "&#96;"
}

/** Text safe inside element content and inside quoted attribute values. */
export const escapeHtml = (text: string): string => text.replace(/[&<>"'`]/g, (char) => entities[char]!)

/** A value interpolated into `html`: Html as is, arrays joined, null/undefined/false as nothing. */
export type Interpolation = Html | string | number | boolean | null | undefined | ReadonlyArray<Interpolation>

const render = (value: Interpolation): string => {
  if (value === null || value === undefined || value === false) return ""
  if (Array.isArray(value)) return value.map(render).join("")
  if (isHtml(value)) return value.value
  return escapeHtml(String(value))
}

export const html = (strings: TemplateStringsArray, ...values: ReadonlyArray<Interpolation>): Html =>
  make(strings.reduce((out, string, index) => out + string + (index < values.length ? render(values[index]!) : ""), ""))

/** Markup this module's callers wrote themselves (never user input): the page's own constants. */
export const unsafeRaw = (markup: string): Html => make(markup)

/**
 * JSON for a `<script type="application/json">` block: `<` escaped so no string in it can close
 * the script element, whatever it contains.
 */
export const jsonScript = (value: unknown): Html =>
  make(
    JSON.stringify(value)
      .replace(/</g, "\\u003c")
      .replace(/\u2028/g, "\\u2028")
      .replace(/\u2029/g, "\\u2029")
  )
