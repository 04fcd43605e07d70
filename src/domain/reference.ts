/** A fully normalized image reference, e.g. docker.io/library/debian:bookworm. */
export interface ImageReference {
  /** Registry host as written by the user, normalized: `docker.io`, `localhost:5000`, `ghcr.io`. */
  readonly registry: string
  /** Repository path within the registry: `library/debian`, `o/app`. */
  readonly repository: string
  /** Tag, when the reference has one (`latest` is filled in when neither tag nor digest is given). */
  readonly tag: string | undefined
  /** `sha256:<hex>` / `sha512:<hex>`, when pinned. */
  readonly digest: string | undefined
  /** The canonical string form: `registry/repository[:tag][@digest]`. */
  readonly normalized: string
}

export interface Platform {
  readonly os: string
  readonly architecture: string
  readonly variant?: string | undefined
}

export const formatPlatform = (platform: Platform): string =>
  [platform.os, platform.architecture, platform.variant].filter((part) => part !== undefined && part !== "").join("/")
