import { spawnSync } from "node:child_process"
import * as os from "node:os"
import { Context, Effect, Layer } from "effect"

/** What a VM may ask of this host, and which VMM binaries are there. */
export interface HostResourcesShape {
  readonly cpuCount: number
  readonly memoryBytes: number
  /** Whether a firecracker binary runs (`$FIRECRACKER_BIN`, else `firecracker` on PATH). */
  readonly firecrackerAvailable: Effect.Effect<boolean>
}

const runs = (bin: string) => spawnSync(bin, ["--version"], { stdio: "ignore", timeout: 5_000 }).status === 0

export class HostResources extends Context.Tag("banger/HostResources")<HostResources, HostResourcesShape>() {
  static readonly layer = Layer.sync(HostResources, () => ({
    cpuCount: os.availableParallelism(),
    memoryBytes: os.totalmem(),
    firecrackerAvailable: Effect.sync(() => runs(process.env.FIRECRACKER_BIN || "firecracker"))
  }))

  static readonly layerTest = (shape: Partial<HostResourcesShape> = {}) =>
    Layer.succeed(HostResources, {
      cpuCount: 4,
      memoryBytes: 8 * 2 ** 30,
      firecrackerAvailable: Effect.succeed(false),
      ...shape
    })
}
