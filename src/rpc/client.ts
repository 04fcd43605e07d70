import { Socket } from "@effect/platform"
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import type { RpcGroup } from "@effect/rpc"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import { Context, type Duration, Layer } from "effect"
import { defaultSocketPath } from "../daemon/spawn.js"
import { BangerApi } from "./api.js"

// Part of this module's public API; defined where bin/banger can load it without effect.
export { defaultSocketPath } from "../daemon/spawn.js"

export type BangerClientShape = RpcClient.RpcClient<RpcGroup.Rpcs<typeof BangerApi>, RpcClientError>

export interface BangerClientOptions {
  /** Default: `defaultSocketPath()`. */
  readonly socket?: string | undefined
  /** Bound on connecting; a socket nobody serves fails the pending calls instead of hanging. Default 3 s. */
  readonly openTimeout?: Duration.DurationInput | undefined
}

/**
 * A client of a running daemon: `const client = yield* BangerClient; yield* client.image.list()`.
 * Calls fail with `RpcClientError` when the daemon cannot be reached; it does not start one (the
 * CLI does that with `ensureDaemon`).
 */
export class BangerClient extends Context.Tag("banger/BangerClient")<BangerClient, BangerClientShape>() {
  static readonly layer = (options: BangerClientOptions = {}): Layer.Layer<BangerClient> => {
    const socket = Layer.scoped(
      Socket.Socket,
      NodeSocket.makeNet({
        path: options.socket ?? defaultSocketPath(),
        openTimeout: options.openTimeout ?? "3 seconds"
      })
    ).pipe(Layer.orDie) // connecting is lazy (per call); making the socket value cannot fail
    return Layer.scoped(BangerClient, RpcClient.make(BangerApi)).pipe(
      Layer.provide(RpcClient.layerProtocolSocket()),
      Layer.provide(Layer.merge(socket, RpcSerialization.layerNdjson))
    )
  }
}
