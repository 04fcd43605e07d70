import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { RpcClient } from "@effect/rpc"
import { Effect, Either, Option, Schema, Stream } from "effect"
import { PEER_HEADER } from "../domain/peer.js"
import { OperationStatus } from "../rpc/schemas.js"
import { SCRIPT, STYLESHEET } from "./assets.js"
import {
  decodePullForm,
  decodeVmCreateForm,
  errorFields,
  type FormValues,
  pullErrorFields,
  vmCreateErrorFields
} from "./forms.js"
import { csrfMatches, currentSession } from "./guard.js"
import type { FieldErrors, PageContext } from "./layout.js"
import { catalogPage } from "./pages/catalog.js"
import { dashboardPage } from "./pages/dashboard.js"
import { deleteImagePage, imagePage, imagesPage } from "./pages/images.js"
import { operationPage } from "./pages/operation.js"
import { deleteVmPage, vmPage, vmsPage } from "./pages/vms.js"
import { errorResponse, htmlResponse, seeOther } from "./responses.js"
import { SESSION_COOKIE, type Session, WebSessions } from "./sessions.js"
import { WebApi, WebDoctor } from "./web-api.js"

/** How much of a VM's console log its page shows: the last lines, read from at most the last chars. */
const CONSOLE_TAIL_CHARS = 16_000
const CONSOLE_TAIL_LINES = 40

interface Failure {
  readonly message: string
}

/** A typed failure of a page's data as an error page (the message is the CLI's one line). */
const orErrorPage = <E extends Failure, R>(
  effect: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>,
  status = 500
) =>
  Effect.catchAll(effect, (error: Failure) =>
    Effect.succeed(
      errorResponse("_tag" in error && String(error._tag).endsWith("NotFound") ? 404 : status, "Error", error.message)
    )
  )

const notSignedIn = (status: 401 | 403) =>
  errorResponse(status, "Not signed in", "Run `banger ui` on the daemon's machine for a login link.")

/**
 * The API calls a session makes carry the peer of the `banger ui` that logged it in, as if that
 * client had made them over the socket (client-paths.ts reads its paths with its rights).
 */
const actingFor = <A, E, R>(session: Session, effect: Effect.Effect<A, E, R>) =>
  session.peer === undefined ? effect : RpcClient.withHeaders(effect, { [PEER_HEADER]: session.peer })

/** A page for a signed-in browser; others get 401. */
const signedIn = <E extends Failure, R>(
  body: (context: PageContext) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) =>
  Effect.flatMap(
    currentSession,
    Option.match({
      onNone: () => Effect.succeed(notSignedIn(401)),
      onSome: (session) => actingFor(session, orErrorPage(body({ csrf: session.csrf })))
    })
  )

/** A form POST: a signed-in session and its CSRF token, else 403 before anything runs. */
const action = <E extends Failure, R>(
  body: (context: PageContext, form: FormValues) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) =>
  Effect.gen(function* () {
    const session = yield* currentSession
    if (Option.isNone(session)) return notSignedIn(403)
    const request = yield* HttpServerRequest.HttpServerRequest
    const params = yield* Effect.either(request.urlParamsBody)
    if (Either.isLeft(params)) return errorResponse(400, "Bad request", "the form could not be read")
    const form: Record<string, string> = {}
    for (const [key, value] of params.right) form[key] = value
    if (!csrfMatches(form._csrf, session.value.csrf))
      return errorResponse(403, "Refused", "the form's CSRF token is missing or wrong; reload the page")
    return yield* actingFor(session.value, orErrorPage(body({ csrf: session.value.csrf }, form), 400))
  })

const param = (name: string) => Effect.map(HttpRouter.params, (params) => params[name] ?? "")

const encodeStatus = Schema.encodeSync(OperationStatus)

const imagesView = (context: PageContext, values: FormValues = {}, errors: FieldErrors = {}) =>
  Effect.gen(function* () {
    const api = yield* WebApi
    const [images, kernels] = yield* Effect.all([api.image.list(), api.kernel.list()], { concurrency: 2 })
    return htmlResponse(
      imagesPage(context, images, kernels, values, errors),
      Object.keys(errors).length === 0 ? 200 : 400
    )
  })

const vmsView = (context: PageContext, values: FormValues = {}, errors: FieldErrors = {}) =>
  Effect.gen(function* () {
    const api = yield* WebApi
    const [vms, images] = yield* Effect.all([api.vm.list(), api.image.list()], { concurrency: 2 })
    return htmlResponse(vmsPage(context, vms, images, values, errors), Object.keys(errors).length === 0 ? 200 : 400)
  })

const login = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const sessions = yield* WebSessions
  const token = new URL(request.url, "http://banger").searchParams.get("token") ?? ""
  const session = yield* sessions.redeem(token)
  if (Option.isNone(session))
    return errorResponse(
      403,
      "Login link not valid",
      "This link was used or has expired; run `banger ui` for a new one."
    )
  return HttpServerResponse.unsafeSetCookie(seeOther("/"), SESSION_COOKIE, session.value, {
    httpOnly: true,
    sameSite: "strict",
    path: "/"
  })
})

const dashboard = signedIn(() =>
  Effect.gen(function* () {
    const api = yield* WebApi
    const [vms, images, kernels, operations, doctor] = yield* Effect.all(
      [api.vm.list(), api.image.list(), api.kernel.list(), api.op.list(), yield* WebDoctor],
      { concurrency: "unbounded" }
    )
    return htmlResponse(dashboardPage({ vms, images, kernels, operations, doctor }))
  })
)

const pull = action((context, form) =>
  Effect.gen(function* () {
    const api = yield* WebApi
    const payload = decodePullForm(form)
    if (Either.isLeft(payload)) return yield* imagesView(context, form, payload.left)
    return yield* api.image.pull(payload.right).pipe(
      Effect.map((operation) => seeOther(`/ops/${operation.id}`)),
      Effect.catchAll((error) => imagesView(context, form, errorFields(error, pullErrorFields)))
    )
  })
)

const createVm = action((context, form) =>
  Effect.gen(function* () {
    const api = yield* WebApi
    const payload = decodeVmCreateForm(form)
    if (Either.isLeft(payload)) return yield* vmsView(context, form, payload.left)
    return yield* api.vm.create(payload.right).pipe(
      Effect.map((operation) => seeOther(`/ops/${operation.id}`)),
      Effect.catchAll((error) => vmsView(context, form, errorFields(error, vmCreateErrorFields)))
    )
  })
)

const operationEvents = signedIn(() =>
  Effect.gen(function* () {
    const api = yield* WebApi
    const id = yield* param("id")
    const events = api.op.watch({ id }).pipe(
      Stream.map((status) => `data: ${JSON.stringify(encodeStatus(status))}\n\n`),
      Stream.catchAll((error) => Stream.make(`event: failure\ndata: ${JSON.stringify(error.message)}\n\n`)),
      Stream.encodeText
    )
    return HttpServerResponse.stream(events, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
    })
  })
)

const consoleTail = (name: string) =>
  Effect.flatMap(WebApi, (api) =>
    api.vm.logs({ name, follow: false }).pipe(
      Stream.runFold("", (text, chunk) => (text + chunk).slice(-CONSOLE_TAIL_CHARS)),
      Effect.map((text) => text.split("\n").slice(-CONSOLE_TAIL_LINES).join("\n")),
      Effect.orElseSucceed(() => "")
    )
  )

const imageRoutes = HttpRouter.empty.pipe(
  HttpRouter.get("/login", login),
  HttpRouter.get(
    "/static/app.css",
    Effect.succeed(HttpServerResponse.text(STYLESHEET, { contentType: "text/css; charset=utf-8" }))
  ),
  HttpRouter.get(
    "/static/app.js",
    Effect.succeed(HttpServerResponse.text(SCRIPT, { contentType: "text/javascript; charset=utf-8" }))
  ),
  HttpRouter.get("/", dashboard),
  HttpRouter.get(
    "/images",
    signedIn((context) => imagesView(context))
  ),
  HttpRouter.post("/images/pull", pull),
  HttpRouter.get(
    "/images/:name",
    signedIn((context) =>
      Effect.gen(function* () {
        const image = yield* (yield* WebApi).image.show({ name: yield* param("name") })
        return htmlResponse(imagePage(context, image))
      })
    )
  ),
  HttpRouter.get(
    "/images/:name/delete",
    signedIn((context) =>
      Effect.gen(function* () {
        const image = yield* (yield* WebApi).image.show({ name: yield* param("name") })
        return htmlResponse(deleteImagePage(context, image))
      })
    )
  ),
  HttpRouter.post(
    "/images/:name/delete",
    action((context) =>
      Effect.gen(function* () {
        const api = yield* WebApi
        const name = yield* param("name")
        return yield* api.image.delete({ name }).pipe(
          Effect.as(seeOther("/images")),
          Effect.catchTags({
            ImageBusy: (error) =>
              Effect.map(api.image.show({ name }), (image) =>
                htmlResponse(deleteImagePage(context, image, error.message), 409)
              ),
            ImageInUse: (error) =>
              Effect.map(api.image.show({ name }), (image) =>
                htmlResponse(deleteImagePage(context, image, error.message), 409)
              )
          })
        )
      })
    )
  ),
  HttpRouter.post(
    "/kernels/pull",
    action((_context, form) =>
      Effect.gen(function* () {
        const operation = yield* (yield* WebApi).kernel.pull({ reference: form.reference ?? "" })
        return seeOther(`/ops/${operation.id}`)
      })
    )
  ),
  HttpRouter.get(
    "/catalog",
    signedIn((context) =>
      Effect.map(
        Effect.flatMap(WebApi, (api) => api.catalog.list({})),
        (listing) => htmlResponse(catalogPage(context, listing))
      )
    )
  )
)

const vmRoutes = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/vms",
    signedIn((context) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const image = new URL(request.url, "http://banger").searchParams.get("image")
        return yield* vmsView(context, image === null ? {} : { image })
      })
    )
  ),
  HttpRouter.post("/vms/create", createVm),
  HttpRouter.get(
    "/vms/:name",
    signedIn((context) =>
      Effect.gen(function* () {
        const name = yield* param("name")
        const vm = yield* (yield* WebApi).vm.show({ name })
        return htmlResponse(vmPage(context, vm, yield* consoleTail(name)))
      })
    )
  ),
  HttpRouter.get(
    "/vms/:name/delete",
    signedIn((context) =>
      Effect.gen(function* () {
        const vm = yield* (yield* WebApi).vm.show({ name: yield* param("name") })
        return htmlResponse(deleteVmPage(context, vm))
      })
    )
  ),
  HttpRouter.post(
    "/vms/:name/start",
    action(() =>
      Effect.gen(function* () {
        const operation = yield* (yield* WebApi).vm.start({ name: yield* param("name") })
        return seeOther(`/ops/${operation.id}`)
      })
    )
  ),
  HttpRouter.post(
    "/vms/:name/stop",
    action(() =>
      Effect.gen(function* () {
        const vm = yield* (yield* WebApi).vm.stop({ name: yield* param("name") })
        return seeOther(`/vms/${encodeURIComponent(vm.name)}`)
      })
    )
  ),
  HttpRouter.post(
    "/vms/:name/delete",
    action((context, form) =>
      Effect.gen(function* () {
        const api = yield* WebApi
        const name = yield* param("name")
        return yield* api.vm.delete({ name, force: form.force === "1" }).pipe(
          Effect.as(seeOther("/vms")),
          Effect.catchTag("VmRefused", (error) =>
            Effect.map(api.vm.show({ name }), (vm) => htmlResponse(deleteVmPage(context, vm, error.message), 409))
          )
        )
      })
    )
  )
)

const operationRoutes = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/ops/:id",
    signedIn((context) =>
      Effect.gen(function* () {
        const status = yield* (yield* WebApi).op.status({ id: yield* param("id") })
        return htmlResponse(operationPage(context, status))
      })
    )
  ),
  HttpRouter.get("/ops/:id/events", operationEvents),
  HttpRouter.post(
    "/ops/:id/cancel",
    action(() =>
      Effect.gen(function* () {
        const status = yield* (yield* WebApi).op.cancel({ id: yield* param("id") })
        return seeOther(`/ops/${status.id}`)
      })
    )
  )
)

export const webRouter = HttpRouter.concatAll(imageRoutes, vmRoutes, operationRoutes)
