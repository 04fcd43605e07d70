import type { RpcClient, RpcGroup } from "@effect/rpc"
import { RpcTest } from "@effect/rpc"
import { Context, Effect, Layer } from "effect"
import { BangerApi } from "../rpc/api.js"
import type { DoctorCheck } from "../rpc/schemas.js"
import { VERSION } from "../version.js"

/**
 * The daemon's own API handlers, called in-process: the UI runs exactly what `banger` over the
 * socket runs, with the same typed errors, and no second implementation of any action.
 */
export class WebApi extends Context.Tag("banger/web/WebApi")<
  WebApi,
  RpcClient.RpcClient<RpcGroup.Rpcs<typeof BangerApi>>
>() {
  static readonly layer = Layer.scoped(WebApi, RpcTest.makeClient(BangerApi))
}

/**
 * The doctor's checks for the dashboard, run at most once a minute: they spawn host tools (a
 * second or two on a busy machine), and what they find rarely changes between page loads.
 */
export class WebDoctor extends Context.Tag("banger/web/WebDoctor")<
  WebDoctor,
  Effect.Effect<ReadonlyArray<DoctorCheck>>
>() {
  static readonly layer = Layer.effect(
    WebDoctor,
    Effect.flatMap(WebApi, (api) =>
      // Only a client's --catalog can be refused, and the UI sends none.
      Effect.cachedWithTTL(Effect.orDie(api.doctor.run({ clientVersion: VERSION })), "1 minute")
    )
  )
}
