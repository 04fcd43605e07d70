import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { Effect } from "effect"

/**
 * Where a kernel's build config may be: beside the kernel (`config`, `config-<release>`, as a
 * kernel pull or a /boot copy leaves it), else the host's /boot for the same release.
 */
export const kernelConfigCandidates = (kernel: string, release: string | undefined) => {
  const dir = path.dirname(kernel)
  return [
    path.join(dir, "config"),
    ...(release === undefined ? [] : [path.join(dir, `config-${release}`), `/boot/config-${release}`])
  ]
}

/** CONFIG_IP_PNP: the kernel sets an interface's address from its `ip=` argument before init. */
export const configHasIpAutoconfig = (config: string) => /^CONFIG_IP_PNP=y$/m.test(config)

/**
 * Whether this kernel takes `ip=`, from the first config found; no config found reads as no: the
 * guest then configures eth0 itself, which works either way.
 */
export const kernelIpAutoconfig = Effect.fn("vm.kernelIpAutoconfig")(function* (
  kernel: string,
  release: string | undefined
) {
  const fs = yield* FileSystem.FileSystem
  for (const candidate of kernelConfigCandidates(kernel, release)) {
    const text = yield* fs.readFileString(candidate).pipe(Effect.option)
    if (text._tag === "Some") return configHasIpAutoconfig(text.value)
  }
  return false
})
