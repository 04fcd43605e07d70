import { HttpServerResponse } from "@effect/platform"
import type { Html } from "./html.js"
import { messagePage } from "./pages/dashboard.js"

export const htmlResponse = (page: Html, status = 200) =>
  HttpServerResponse.text(page.value, { status, contentType: "text/html; charset=utf-8" })

/** After a POST, the browser GETs the page showing its effect (no resubmission on reload). */
export const seeOther = (location: string) => HttpServerResponse.redirect(location, { status: 303 })

export const errorResponse = (status: number, title: string, message: string) =>
  htmlResponse(messagePage(title, message, { nav: status !== 401 && status !== 403 }), status)

/**
 * On every response: no framing, no sniffing, no referrer to other sites (a login URL must not leak; "no-referrer" would make browsers send `Origin: null` on our own forms), and no
 * script or style but the UI's own files.
 */
export const securityHeaders: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "same-origin",
  "cache-control": "no-store"
}
