import { randomBytes } from "node:crypto"
import * as path from "node:path"
import { Context, Layer } from "effect"
import { ownProcessIdentity } from "../host/process-identity.js"

/** Where banger keeps its database and artifacts; everything lives under one root. */
export interface StatePathsShape {
  readonly root: string
  readonly database: string
  readonly images: string
  readonly kernels: string
  /** One directory per VM: work disk, console log, VMM sockets. */
  readonly vms: string
  /** banger's ssh client key pair (`id_ed25519`, `.pub`), private to the daemon's user. */
  readonly sshDir: string
  readonly sshClientKey: string
  /** Host-wide facts banger learned (e.g. that KVM guests do not run here). */
  readonly host: string
  /** Root of the content-addressed blob store (`<alg>/<hex>` below it). */
  readonly blobs: string
  readonly tmp: string
  /** Partial blob downloads; same filesystem as `blobs` so a verified download is a rename. */
  readonly blobTmp: string
  /** Every directory whose entries are `tempPath` names (swept on start). */
  readonly tempDirs: ReadonlyArray<string>
  readonly imageDir: (id: string) => string
  readonly stagingDir: (id: string) => string
  readonly kernelDir: (name: string) => string
  readonly vmDir: (id: string) => string
  /** `<kernels>/.staging-<id>`: a leading dot, so it can never be a kernel's name. */
  readonly kernelStagingDir: (id: string) => string
  readonly blobPath: (digest: string) => string
  /** `<state>/cache/diff-ids/<alg>/<hex>`: the DiffID a pull checked that blob's uncompressed content against. */
  readonly diffIdPath: (digest: string) => string
  /**
   * A fresh path for a temp tree or file under `dir`, named `<pid>-<label>-<random>` so the
   * recovery sweep can tell a live process's work in progress from a crashed one's leftovers.
   */
  readonly tempPath: (dir: string, label: string) => string
  /**
   * The memory that KVM guests never ran on this host although /dev/kvm opens (nested setups):
   * written by the VM layer when a guest stayed silent under KVM, shown by `banger doctor`. Its
   * first line says when and why.
   */
  readonly kvmGuestsDoNotRun: string
}

/** The identity (`pid.starttime`, or a bare pid) of the process that owns a temp path made by `tempPath`. */
export const tempPathOwner = (name: string): string | undefined => /^(\d+(?:\.\d+)?)-/.exec(name)?.[1]

export const KERNEL_STAGING_PREFIX = ".staging-"

export const makeStatePaths = (root: string): StatePathsShape => {
  const absolute = path.resolve(root)
  const images = path.join(absolute, "images")
  const kernels = path.join(absolute, "kernels")
  const vms = path.join(absolute, "vms")
  const host = path.join(absolute, "host")
  const blobs = path.join(absolute, "cache", "blobs")
  const tmp = path.join(absolute, "tmp")
  const blobTmp = path.join(absolute, "cache", "blobs", ".tmp")
  const diffIds = path.join(absolute, "cache", "diff-ids")
  return {
    root: absolute,
    database: path.join(absolute, "banger.db"),
    images,
    kernels,
    vms,
    sshDir: path.join(absolute, "ssh"),
    sshClientKey: path.join(absolute, "ssh", "id_ed25519"),
    host,
    blobs,
    tmp,
    blobTmp,
    tempDirs: [tmp, blobTmp],
    imageDir: (id) => path.join(images, id),
    stagingDir: (id) => path.join(images, `${id}.staging`),
    kernelDir: (name) => path.join(kernels, name),
    vmDir: (id) => path.join(vms, id),
    kernelStagingDir: (id) => path.join(kernels, `${KERNEL_STAGING_PREFIX}${id}`),
    // `alg:hex` → `<blobs>/<alg>/<hex>`. Callers pass only validated digests (see registry/digest.ts).
    blobPath: (digest) => path.join(blobs, ...digest.split(":", 2)),
    diffIdPath: (digest) => path.join(diffIds, ...digest.split(":", 2)),
    tempPath: (dir, label) => path.join(dir, `${ownProcessIdentity()}-${label}-${randomBytes(6).toString("hex")}`),
    kvmGuestsDoNotRun: path.join(host, "kvm-guests-do-not-run")
  }
}

export class StatePaths extends Context.Tag("banger/StatePaths")<StatePaths, StatePathsShape>() {
  static readonly layer = (root: string) => Layer.succeed(StatePaths, makeStatePaths(root))
}
