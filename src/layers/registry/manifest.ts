import { Effect, Either, Schema } from "effect"
import { RegistryError } from "../../domain/errors.js"
import { type LayerCompression, MediaTypes } from "../../domain/oci.js"
import { digestPattern } from "./digest.js"

const Digest = Schema.String.pipe(Schema.pattern(digestPattern, { message: () => "not a valid sha256/sha512 digest" }))

const PlatformSchema = Schema.Struct({
  os: Schema.String,
  architecture: Schema.String,
  variant: Schema.optional(Schema.String)
})

const DescriptorSchema = Schema.Struct({
  mediaType: Schema.String,
  digest: Digest,
  size: Schema.NonNegativeInt,
  platform: Schema.optional(PlatformSchema)
})

export const ImageIndex = Schema.Struct({
  schemaVersion: Schema.Literal(2),
  mediaType: Schema.optional(Schema.String),
  manifests: Schema.Array(DescriptorSchema)
})
export type ImageIndex = typeof ImageIndex.Type

export const ImageManifest = Schema.Struct({
  schemaVersion: Schema.Literal(2),
  mediaType: Schema.optional(Schema.String),
  config: DescriptorSchema,
  layers: Schema.Array(DescriptorSchema)
})
export type ImageManifest = typeof ImageManifest.Type

export const ImageConfig = Schema.Struct({
  os: Schema.String,
  architecture: Schema.String,
  variant: Schema.optional(Schema.String),
  rootfs: Schema.Struct({ type: Schema.String, diff_ids: Schema.Array(Digest) }),
  /** How a container of the image runs; null-valued fields appear in the wild (`"Cmd": null`). */
  config: Schema.optional(
    Schema.NullOr(
      Schema.Struct({
        Entrypoint: Schema.optional(Schema.NullOr(Schema.Array(Schema.String))),
        Cmd: Schema.optional(Schema.NullOr(Schema.Array(Schema.String))),
        Env: Schema.optional(Schema.NullOr(Schema.Array(Schema.String))),
        WorkingDir: Schema.optional(Schema.NullOr(Schema.String)),
        User: Schema.optional(Schema.NullOr(Schema.String))
      })
    )
  )
})
export type ImageConfig = typeof ImageConfig.Type

/** Everything we can read, most specific first: what the `Accept` header of a manifest GET offers. */
export const manifestAccept = [
  MediaTypes.ociIndex,
  MediaTypes.ociManifest,
  MediaTypes.dockerManifestList,
  MediaTypes.dockerManifest
].join(", ")

const indexTypes: ReadonlySet<string> = new Set([MediaTypes.ociIndex, MediaTypes.dockerManifestList])
const manifestTypes: ReadonlySet<string> = new Set([MediaTypes.ociManifest, MediaTypes.dockerManifest])
const configTypes: ReadonlySet<string> = new Set([MediaTypes.ociConfig, MediaTypes.dockerConfig])

export type ParsedManifest =
  | { readonly _tag: "Index"; readonly index: ImageIndex }
  | { readonly _tag: "Manifest"; readonly manifest: ImageManifest }

const decodeJson = <A, I>(schema: Schema.Schema<A, I>, text: string, what: string, reference: string) =>
  Schema.decodeUnknownEither(Schema.parseJson(schema))(text).pipe(
    Either.mapLeft((error) => new RegistryError({ reference, reason: `invalid ${what}: ${error.message}` }))
  )

/**
 * Tells an index from an image manifest by its `mediaType` field, else the Content-Type, else its
 * shape (OCI made the field optional). Schema 1 manifests and artifacts are refused by name.
 */
export const parseManifest = (
  bytes: Uint8Array,
  contentType: string | undefined,
  reference: string
): Effect.Effect<ParsedManifest, RegistryError> =>
  Effect.gen(function* () {
    const text = Buffer.from(bytes).toString("utf8")
    const loose = yield* Schema.decodeUnknownEither(
      Schema.parseJson(
        Schema.Struct({
          schemaVersion: Schema.optional(Schema.Unknown),
          mediaType: Schema.optional(Schema.Unknown),
          manifests: Schema.optional(Schema.Unknown)
        })
      )
    )(text).pipe(Either.mapLeft(() => new RegistryError({ reference, reason: "manifest is not a JSON object" })))
    if (loose.schemaVersion === 1) {
      return yield* new RegistryError({ reference, reason: "schema 1 manifests are not supported (image too old)" })
    }
    const declared =
      typeof loose.mediaType === "string" ? loose.mediaType : contentType?.split(";")[0]?.trim().toLowerCase()
    if (typeof loose.mediaType === "string" && !indexTypes.has(declared!) && !manifestTypes.has(declared!)) {
      return yield* new RegistryError({ reference, reason: `unsupported manifest media type ${loose.mediaType}` })
    }
    const isIndex =
      declared !== undefined && (indexTypes.has(declared) || manifestTypes.has(declared))
        ? indexTypes.has(declared)
        : loose.manifests !== undefined
    return isIndex
      ? { _tag: "Index" as const, index: yield* decodeJson(ImageIndex, text, "image index", reference) }
      : { _tag: "Manifest" as const, manifest: yield* decodeJson(ImageManifest, text, "image manifest", reference) }
  })

export const parseConfig = (bytes: Uint8Array, reference: string): Effect.Effect<ImageConfig, RegistryError> =>
  decodeJson(ImageConfig, Buffer.from(bytes).toString("utf8"), "image config", reference)

/** True for descriptors of an index that point at image manifests (not nested indexes or artifacts). */
export const isImageManifestType = (mediaType: string): boolean => manifestTypes.has(mediaType)

export const isImageConfigType = (mediaType: string): boolean => configTypes.has(mediaType)

const compressions: ReadonlyMap<string, LayerCompression> = new Map([
  [MediaTypes.ociLayer, "none"],
  [MediaTypes.ociLayerGzip, "gzip"],
  [MediaTypes.ociLayerZstd, "zstd"],
  [MediaTypes.dockerLayerGzip, "gzip"]
])

/** How a layer is compressed, or undefined for types we cannot unpack (foreign, encrypted, unknown). */
export const layerCompression = (mediaType: string): LayerCompression | undefined => compressions.get(mediaType)
