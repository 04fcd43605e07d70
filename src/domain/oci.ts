import type { Platform } from "./reference.js"

export const MediaTypes = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
} as const

export type LayerCompression = "gzip" | "zstd" | "none"

/** A content-addressed blob as named by a manifest. */
export interface Descriptor {
  readonly mediaType: string
  readonly digest: string
  readonly size: number
}

export interface LayerDescriptor extends Descriptor {
  readonly compression: LayerCompression
  /** The uncompressed tar's digest, from the config's `rootfs.diff_ids`. */
  readonly diffId: string
}

/** How the image's own config says to run it (OCI `config`); empty when it says nothing. */
export interface RuntimeConfig {
  readonly entrypoint: ReadonlyArray<string>
  readonly cmd: ReadonlyArray<string>
  /** `KEY=value` entries, in order. */
  readonly env: ReadonlyArray<string>
  readonly workingDir: string
  readonly user: string
}

/** What the pipeline needs from a registry to build a rootfs. */
export interface ResolvedImage {
  /** Digest of the platform-specific manifest (the one listing the layers). */
  readonly manifestDigest: string
  readonly platform: Platform
  readonly config: Descriptor
  readonly runtime: RuntimeConfig
  /** Bottom layer first. */
  readonly layers: ReadonlyArray<LayerDescriptor>
}
