import type { KernelFormat } from "../../domain/image.js"
import type { VmmBackend } from "../../domain/vmm.js"

/** A VMM the user may ask for, or banger chooses: the Vmm service's backends. */
export type VmmChoice = VmmBackend

/** What the host offers, as far as choosing a VMM goes. */
export interface VmmHostFacts {
  /** A firecracker binary was found (FIRECRACKER_BIN or PATH). */
  readonly firecracker: boolean
  /** /dev/kvm opens read-write and the host is not remembered as one where KVM guests never run. */
  readonly kvmUsable: boolean
}

/** What about the kernel decides which VMM can boot it. */
export interface KernelFacts {
  readonly format: KernelFormat | null
  /** An ELF kernel's PVH entry note: QEMU's -kernel boots an ELF only through it. */
  readonly pvh: boolean
}

export type VmmDecision =
  | { readonly _tag: "Chosen"; readonly vmm: VmmChoice; readonly reason: string }
  | { readonly _tag: "Refused"; readonly reason: string }

/**
 * `--vmm` as asked, else Firecracker when it can boot this kernel here (its binary, a usable
 * /dev/kvm, an ELF vmlinux), else QEMU, which runs anywhere, as long as it can load the kernel.
 * The reason is what `vm show` prints, or the refusal the user reads.
 */
export const chooseVmm = (requested: VmmChoice | undefined, kernel: KernelFacts, host: VmmHostFacts): VmmDecision => {
  const firecrackerBlocker = !host.firecracker
    ? "no firecracker binary (set FIRECRACKER_BIN or put it on PATH)"
    : !host.kvmUsable
      ? "Firecracker needs a usable /dev/kvm"
      : kernel.format !== "elf"
        ? `Firecracker boots only an uncompressed ELF vmlinux; this kernel is ${kernel.format ?? "of unknown format"}`
        : undefined
  const qemuBlocker =
    kernel.format === "elf" && !kernel.pvh
      ? "QEMU boots an ELF vmlinux only through a PVH entry note, which this kernel (a Firecracker kernel) lacks"
      : undefined
  if (requested === "qemu") {
    return qemuBlocker === undefined
      ? { _tag: "Chosen", vmm: "qemu", reason: "--vmm qemu" }
      : { _tag: "Refused", reason: `--vmm qemu: ${qemuBlocker} (pair the image with a bzImage kernel)` }
  }
  if (requested === "firecracker") {
    return firecrackerBlocker === undefined
      ? { _tag: "Chosen", vmm: "firecracker", reason: "--vmm firecracker" }
      : { _tag: "Refused", reason: `--vmm firecracker: ${firecrackerBlocker} (use --vmm qemu)` }
  }
  if (firecrackerBlocker === undefined) {
    return { _tag: "Chosen", vmm: "firecracker", reason: "default: firecracker, /dev/kvm and an ELF kernel are there" }
  }
  if (qemuBlocker !== undefined) {
    return {
      _tag: "Refused",
      reason: `this kernel boots only under Firecracker, which cannot run here: ${firecrackerBlocker} (${qemuBlocker})`
    }
  }
  return { _tag: "Chosen", vmm: "qemu", reason: `default: qemu, since ${firecrackerBlocker}` }
}
