/**
 * `banger/rpc`: the daemon's contract and a ready client, for other Effect programs.
 *
 *   Effect.gen(function* () { const client = yield* BangerClient; return yield* client.image.list() })
 *     .pipe(Effect.provide(BangerClient.layer({ socket })))
 */
export * from "../domain/catalog-listing.js"
export * from "../domain/errors.js"
export { BangerApi } from "./api.js"
export { BangerClient, type BangerClientOptions, type BangerClientShape, defaultSocketPath } from "./client.js"
export * from "./schemas.js"
