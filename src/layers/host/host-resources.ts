import * as os from "node:os"
import { Context, Layer } from "effect"

/** What a VM may ask of this host: its CPUs and memory. */
export interface HostResourcesShape {
  readonly cpuCount: number
  readonly memoryBytes: number
}

export class HostResources extends Context.Tag("banger/HostResources")<HostResources, HostResourcesShape>() {
  static readonly layer = Layer.sync(HostResources, () => ({
    cpuCount: os.availableParallelism(),
    memoryBytes: os.totalmem()
  }))

  static readonly layerTest = (shape: Partial<HostResourcesShape> = {}) =>
    Layer.succeed(HostResources, { cpuCount: 4, memoryBytes: 8 * 2 ** 30, ...shape })
}
