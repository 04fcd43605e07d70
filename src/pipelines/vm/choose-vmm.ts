import type { KernelFormat } from "../../domain/image.js"

export type VmmChoice = "firecracker" | "qemu"

/** What the host offers, as far as choosing a VMM goes. */
export interface VmmHostFacts {
  /** A firecracker binary was found (FIRECRACKER_BIN or PATH). */
  readonly firecracker: boolean
  /** /dev/kvm opens read-write and the host is not remembered as one where KVM guests never run. */
  readonly kvmUsable: boolean
}

export type VmmDecision =
  | { readonly _tag: "Chosen"; readonly vmm: VmmChoice; readonly reason: string }
  | { readonly _tag: "Refused"; readonly reason: string }

/**
 * `--vmm` as asked, else Firecracker when it can boot this kernel here (its binary, a usable
 * /dev/kvm, an ELF vmlinux), else QEMU, which runs anywhere. The reason is what `vm show` prints.
 */
export const chooseVmm = (
  requested: VmmChoice | undefined,
  kernelFormat: KernelFormat | null,
  host: VmmHostFacts
): VmmDecision => {
  const firecrackerBlocker = !host.firecracker
    ? "no firecracker binary (set FIRECRACKER_BIN or put it on PATH)"
    : !host.kvmUsable
      ? "Firecracker needs a usable /dev/kvm"
      : kernelFormat !== "elf"
        ? `Firecracker boots only an uncompressed ELF vmlinux; this kernel is ${kernelFormat ?? "of unknown format"}`
        : undefined
  if (requested === "qemu") return { _tag: "Chosen", vmm: "qemu", reason: "--vmm qemu" }
  if (requested === "firecracker") {
    return firecrackerBlocker === undefined
      ? { _tag: "Chosen", vmm: "firecracker", reason: "--vmm firecracker" }
      : { _tag: "Refused", reason: `--vmm firecracker: ${firecrackerBlocker} (use --vmm qemu)` }
  }
  return firecrackerBlocker === undefined
    ? { _tag: "Chosen", vmm: "firecracker", reason: "default: firecracker, /dev/kvm and an ELF kernel are there" }
    : { _tag: "Chosen", vmm: "qemu", reason: `default: qemu, since ${firecrackerBlocker}` }
}
