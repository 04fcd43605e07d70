import * as http from "node:http"
import { HttpServer } from "@effect/platform"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Effect, Layer } from "effect"
import { browseAddress, hostPort, type WebConfig } from "./address.js"
import { guard } from "./guard.js"
import { webRouter } from "./routes.js"
import { WebApi, WebDoctor } from "./web-api.js"

/**
 * The web UI on `config`'s address, over the daemon's own handlers (provided by the caller with
 * the WebSessions the `web.login` handler shares). Closing it drops open connections (live
 * operation streams) instead of waiting for browsers to hang up.
 */
export const webLayer = (config: WebConfig) => {
  let server: http.Server | undefined
  const listener = NodeHttpServer.layer(
    () => {
      server = http.createServer()
      return server
    },
    { host: config.host, port: config.port }
  )
  const dropConnections = Layer.scopedDiscard(
    Effect.addFinalizer(() => Effect.sync(() => server?.closeAllConnections()))
  )
  const announce = Layer.effectDiscard(
    Effect.logInfo(`web UI on http://${hostPort(browseAddress(config))} (log in with: banger ui)`)
  )
  return HttpServer.serve(guard(config)(webRouter)).pipe(
    Layer.provide(dropConnections),
    Layer.provide(WebDoctor.layer.pipe(Layer.provideMerge(WebApi.layer))),
    Layer.provideMerge(announce),
    Layer.provide(listener)
  )
}
