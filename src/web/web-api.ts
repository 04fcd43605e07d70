import type { RpcClient, RpcGroup } from "@effect/rpc"
import { RpcTest } from "@effect/rpc"
import { Context, Layer } from "effect"
import { BangerApi } from "../rpc/api.js"

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
