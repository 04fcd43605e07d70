import { Config, Duration, Effect, Option } from "effect"
import { RegistryError } from "../../domain/errors.js"
import type { ImageReference } from "../../domain/reference.js"
import { makeAuthenticator } from "./auth.js"
import { makeBlobReader } from "./blob-stream.js"
import { dockerConfigPath } from "./docker-config.js"
import { apiHost, parseInsecureRegistries, registryBaseUrl } from "./hosts.js"
import { makeHttp, type RegistryTarget } from "./http.js"
import type { RegistryClientShape } from "./registry-client.js"
import { makeResolver } from "./resolve.js"
import { makeTransport } from "./transport.js"

export interface RegistryClientOptions {
  /** Path of the docker `config.json` holding credentials. */
  readonly dockerConfigPath?: string | undefined
  /** `host[:port]` entries spoken to over plain HTTP (loopback always is). */
  readonly insecureRegistries?: ReadonlyArray<string> | undefined
  /** Tries per request (and consecutive no-progress reconnects per blob), counting the first. */
  readonly attempts?: number | undefined
  /** First backoff delay; doubles per retry, with jitter. */
  readonly baseDelay?: Duration.DurationInput | undefined
  /** Until response headers arrive. */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /** Longest silence inside any response body before it counts as a dropped connection. */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** Most time one blob may lose to silent connections, all reconnects together. */
  readonly stallBudget?: Duration.DurationInput | undefined
  /** Bound on the whole resolve step (manifests and config, every retry included). */
  readonly resolveTimeout?: Duration.DurationInput | undefined
  readonly maxRedirects?: number | undefined
}

/** What a daemon uses unless told otherwise (`banger daemon --idle-timeout … --stall-budget … --resolve-timeout …`). */
export const transferDefaults = {
  idleTimeout: Duration.seconds(30),
  stallBudget: Duration.minutes(2),
  resolveTimeout: Duration.minutes(2)
} as const

/** `DOCKER_CONFIG` and `BANGER_INSECURE_REGISTRIES` from the environment (via Effect's ConfigProvider). */
export const optionsFromEnv: Effect.Effect<RegistryClientOptions> = Effect.gen(function* () {
  const dockerConfig = yield* Config.option(Config.string("DOCKER_CONFIG"))
  const insecure = yield* Config.option(Config.string("BANGER_INSECURE_REGISTRIES"))
  return {
    dockerConfigPath: dockerConfigPath({ DOCKER_CONFIG: Option.getOrUndefined(dockerConfig) }),
    insecureRegistries: parseInsecureRegistries(Option.getOrUndefined(insecure))
  }
}).pipe(Effect.orElseSucceed(() => ({})))

export const makeRegistryClient = Effect.fn("makeRegistryClient")(function* (options: RegistryClientOptions = {}) {
  const attempts = options.attempts ?? 4
  const baseDelay = options.baseDelay ?? "250 millis"
  const insecure = options.insecureRegistries ?? []
  const configPath = options.dockerConfigPath ?? dockerConfigPath()
  const idleTimeout = options.idleTimeout ?? transferDefaults.idleTimeout
  const resolveTimeout = options.resolveTimeout ?? transferDefaults.resolveTimeout
  const http = yield* makeHttp({
    attempts,
    baseDelay,
    // Waiting for headers is silence too: the same patience as a body.
    requestTimeout: options.requestTimeout ?? idleTimeout,
    maxRedirects: options.maxRedirects ?? 5,
    idleTimeout
  })
  const transport = makeTransport(
    http,
    makeAuthenticator(http, { dockerConfigPath: configPath, insecureRegistries: insecure }),
    configPath
  )
  const resolver = makeResolver(transport, { attempts, baseDelay, idleTimeout })
  const readBlob = makeBlobReader(transport, {
    attempts,
    maxResumes: 10,
    baseDelay,
    idleTimeout,
    stallBudget: options.stallBudget ?? transferDefaults.stallBudget
  })

  const targetFor = (reference: ImageReference): RegistryTarget => ({
    reference: reference.normalized,
    registry: reference.registry,
    host: apiHost(reference.registry),
    baseUrl: registryBaseUrl(reference.registry, insecure),
    repository: reference.repository
  })

  return {
    resolve: (reference, platform) => {
      const target = targetFor(reference)
      return resolver.resolve(target, reference, platform).pipe(
        Effect.timeoutFail({
          duration: resolveTimeout,
          onTimeout: () =>
            new RegistryError({
              reference: reference.normalized,
              reason: `${target.host} did not serve the manifest and config within ${Duration.format(resolveTimeout)} (all retries together)`
            })
        })
      )
    },
    readBlob: (reference, descriptor, onChunk) => readBlob(targetFor(reference), descriptor, onChunk)
  } satisfies RegistryClientShape
})
