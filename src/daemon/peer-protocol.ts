import { Socket, SocketServer } from "@effect/platform"
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import { RpcMessage, RpcSerialization, RpcServer } from "@effect/rpc"
import { Effect, Layer, Mailbox, Option, Scope } from "effect"
import { DaemonStartError } from "../domain/errors.js"
import { encodePeer, PEER_HEADER } from "../domain/peer.js"
import { loadPeerCredentials, peerOfSocket } from "./peer-credentials.js"

/**
 * Every request's headers as the handler sees them: the client's own, minus anything under the
 * peer header's name, then the connection's peer as the kernel reported it.
 */
export const stampPeer = (headers: ReadonlyArray<readonly [string, string]>, peer: string): Array<[string, string]> => [
  ...headers
    .filter(([name]) => name.toLowerCase() !== PEER_HEADER)
    .map(([name, value]): [string, string] => [name, value]),
  [PEER_HEADER, peer]
]

/**
 * The RPC protocol over the daemon's socket server, like `RpcServer.layerProtocolSocketServer`
 * (which numbers connections internally and cannot say whose they are), plus one thing: each
 * connection's peer credentials are read when it is accepted and stamped on each of its requests
 * (`PEER_HEADER`), so a handler knows whose rights a client path is to be read with.
 */
export const layerPeerProtocol = Layer.scoped(
  RpcServer.Protocol,
  Effect.gen(function* () {
    // Loaded before anything listens: without it the daemon could not tell its clients apart.
    yield* Effect.try({
      try: loadPeerCredentials,
      catch: (error) => new DaemonStartError({ reason: error instanceof Error ? error.message : String(error) })
    })
    const server = yield* SocketServer.SocketServer
    const serialization = yield* RpcSerialization.RpcSerialization
    const disconnects = yield* Mailbox.make<number>()
    const clients = new Map<number, (response: RpcMessage.FromServerEncoded) => Effect.Effect<void>>()
    let nextId = 0
    let writeRequest!: (clientId: number, message: RpcMessage.FromClientEncoded) => Effect.Effect<void>

    const onSocket = (socket: Socket.Socket) =>
      Effect.gen(function* () {
        // The Node server hands each connection's net.Socket to its handler in the context. A peer
        // we cannot identify gets no service at all (its socket is closed unanswered).
        const connection = yield* Effect.serviceOption(NodeSocket.NetSocket)
        if (Option.isNone(connection)) return yield* Effect.dieMessage("the socket server gave no net.Socket")
        const peer = encodePeer(peerOfSocket(connection.value))
        const id = nextId++
        const parser = serialization.unsafeMake()
        yield* Scope.addFinalizer(
          yield* Effect.scope,
          Effect.suspend(() => {
            clients.delete(id)
            return disconnects.offer(id)
          })
        )
        const writeRaw = yield* socket.writer
        const encode = (response: RpcMessage.FromServerEncoded) => {
          try {
            return parser.encode(response)
          } catch (cause) {
            return parser.encode(RpcMessage.ResponseDefectEncoded(cause))
          }
        }
        clients.set(id, (response) => {
          const encoded = encode(response)
          return encoded === undefined ? Effect.void : Effect.orDie(writeRaw(encoded))
        })
        yield* socket
          .runRaw((data) => {
            let messages: ReadonlyArray<RpcMessage.FromClientEncoded>
            try {
              messages = parser.decode(data) as ReadonlyArray<RpcMessage.FromClientEncoded>
            } catch (cause) {
              if (cause instanceof RpcSerialization.RpcSerializationError) {
                return writeRaw(new Socket.CloseEvent(1009, cause.message))
              }
              return writeRaw(parser.encode(RpcMessage.ResponseDefectEncoded(cause))!)
            }
            return Effect.forEach(
              messages,
              (message) =>
                writeRequest(
                  id,
                  message._tag === "Request" ? { ...message, headers: stampPeer(message.headers, peer) } : message
                ),
              { discard: true }
            )
          })
          .pipe(
            Effect.interruptible,
            Effect.catchIf(
              (error) => error.reason === "Close",
              () => Effect.void
            ),
            Effect.orDie
          )
      }).pipe(Effect.scoped)

    yield* server
      .run((socket) =>
        onSocket(socket).pipe(
          Effect.catchAllDefect((defect) => Effect.logWarning("refused a client connection", defect))
        )
      )
      .pipe(Effect.interruptible, Effect.forkScoped)

    return yield* RpcServer.Protocol.make((write) => {
      writeRequest = write
      return Effect.succeed({
        disconnects,
        send: (clientId, response) => clients.get(clientId)?.(response) ?? Effect.void,
        end: () => Effect.void,
        clientIds: Effect.sync(() => new Set(clients.keys())),
        initialMessage: Effect.succeedNone,
        supportsAck: true,
        supportsTransferables: false,
        supportsSpanPropagation: true
      })
    })
  })
)
