import { Data, Duration, Effect, Stream } from "effect"
import { RegistryError } from "../../domain/errors.js"
import type { Descriptor } from "../../domain/oci.js"
import { parseDigest } from "./digest.js"
import { drain, type RegistryTarget } from "./http.js"
import { expectStatus, type Transport } from "./transport.js"

export interface BlobStreamOptions {
  /** Consecutive failures without a single new byte before giving up. */
  readonly attempts: number
  /** Reconnections per blob in all, so a server that keeps dying cannot keep us forever. */
  readonly maxResumes: number
  readonly baseDelay: Duration.DurationInput
  /** A body that sends nothing for this long counts as a dropped connection. */
  readonly idleTimeout: Duration.DurationInput
}

/** The body broke off after the response started; resumable with a Range request. */
class Cut extends Data.TaggedError("Cut")<{ readonly reason: string }> {}

const causeMessage = (error: { readonly cause?: unknown }): string => {
  let current: unknown = error.cause
  for (let depth = 0; depth < 5; depth++) {
    const next = (current as { cause?: unknown } | undefined)?.cause
    if (typeof next !== "object" || next === null) break
    current = next
  }
  return current instanceof Error ? current.message : String(current)
}

/**
 * Streams a blob as stored, resuming with `Range: bytes=<received>-` when the connection drops
 * mid-body (servers that ignore Range get the already-received prefix skipped). Nothing is
 * buffered beyond the chunk in flight.
 */
export const makeBlobStreamer =
  (transport: Transport, options: BlobStreamOptions) =>
  (target: RegistryTarget, descriptor: Descriptor): Stream.Stream<Uint8Array, RegistryError> =>
    Stream.suspend(() => {
      const fail = (reason: string) => new RegistryError({ reference: target.reference, reason })
      if (parseDigest(descriptor.digest) === undefined) {
        return Stream.fail(fail(`invalid blob digest "${descriptor.digest}"`))
      }
      const url = `${target.baseUrl}/v2/${target.repository}/blobs/${descriptor.digest}`
      let received = 0
      let resumes = 0
      let failuresWithoutProgress = 0

      const open = (): Stream.Stream<Uint8Array, RegistryError | Cut> =>
        Stream.unwrap(
          Effect.gen(function* () {
            const start = received
            const followed = yield* transport.get(target, url, start > 0 ? { range: `bytes=${start}-` } : {})
            const response = yield* expectStatus(
              target,
              followed,
              `blob ${descriptor.digest}`,
              start > 0 ? [200, 206] : [200]
            )
            let skip = 0
            if (response.status === 206) {
              const range = /^bytes (\d+)-/.exec(response.headers["content-range"] ?? "")
              if (range === null || Number(range[1]) !== start) {
                yield* drain(response)
                return yield* fail(`${followed.url.host} answered a resume at byte ${start} with the wrong range`)
              }
            } else {
              // Range ignored: the body starts over, so skip what was already passed on.
              skip = start
            }
            return response.stream.pipe(
              Stream.mapError((error) => new Cut({ reason: causeMessage(error) })),
              Stream.timeoutFail(
                () => new Cut({ reason: `no data for ${Duration.format(options.idleTimeout)}` }),
                options.idleTimeout
              ),
              Stream.map((chunk) => {
                if (skip === 0) return chunk
                const dropped = Math.min(skip, chunk.length)
                skip -= dropped
                return chunk.subarray(dropped)
              }),
              Stream.filter((chunk) => chunk.length > 0),
              Stream.tap((chunk) =>
                Effect.sync(() => {
                  received += chunk.length
                  failuresWithoutProgress = 0
                })
              )
            )
          })
        )

      const attempt = (): Stream.Stream<Uint8Array, RegistryError> =>
        Stream.catchTag(open(), "Cut", (cut) => {
          failuresWithoutProgress++
          resumes++
          if (failuresWithoutProgress >= options.attempts || resumes > options.maxResumes) {
            return Stream.fail(
              fail(
                `connection lost after ${received} of ${descriptor.size} bytes of blob ${descriptor.digest}: ${cut.reason} (gave up after ${resumes} reconnects)`
              )
            )
          }
          const delay = Duration.times(Duration.decode(options.baseDelay), 2 ** (failuresWithoutProgress - 1))
          return Stream.concat(Stream.drain(Stream.fromEffect(Effect.sleep(delay))), attempt())
        })

      return attempt()
    })
