import type { Accel, VmLaunchSpec } from "../../../domain/vmm.js"

/**
 * `microvm`: virtio-mmio devices, no PCI or firmware to probe; for Firecracker-style kernels, which
 * have virtio-mmio built in (an ELF vmlinux). `pc`: virtio-pci, for distribution kernels (bzImage)
 * whose virtio drivers may be modules in the initrd.
 */
export type QemuMachine = "microvm" | "pc"

export const machineFor = (spec: Pick<VmLaunchSpec, "kernelFormat">): QemuMachine =>
  spec.kernelFormat === "elf" ? "microvm" : "pc"

export interface QemuArgvInput {
  readonly bin: string
  readonly spec: VmLaunchSpec
  readonly accel: Accel
  readonly machine: QemuMachine
  readonly qmpSocket: string
}

/** The full qemu command line for one VM; pure, so every flag is unit-tested. */
export const qemuArgv = ({ bin, spec, accel, machine, qmpSocket }: QemuArgvInput): ReadonlyArray<string> => [
  bin,
  "-name",
  `banger-${spec.vmId}`,
  // No default NIC, VGA, floppy, CD or monitor: only what is listed here.
  "-nodefaults",
  "-nographic",
  // A guest reboot ends the process, as it does with Firecracker: a start is always a fresh VMM.
  "-no-reboot",
  "-machine",
  machine === "microvm" ? "microvm" : "pc",
  "-accel",
  accel,
  // TCG: every feature it can emulate; KVM: the host's own CPU.
  "-cpu",
  accel === "tcg" ? "max" : "host",
  "-smp",
  String(spec.cpus),
  "-m",
  `${spec.memoryMib}M`,
  "-kernel",
  spec.kernel,
  ...(spec.initrd === undefined ? [] : ["-initrd", spec.initrd]),
  "-append",
  spec.bootArgs,
  "-drive",
  `id=root,file=${driveFile(spec.rootDisk)},format=raw,if=none,cache=writeback,discard=unmap`,
  "-device",
  machine === "microvm" ? "virtio-blk-device,drive=root" : "virtio-blk-pci,drive=root",
  // The tap exists already (QEMU only opens it): no scripts to run on the host.
  ...(spec.network === undefined
    ? []
    : [
        "-netdev",
        `tap,id=n0,ifname=${optionValue(spec.network.tap)},script=no,downscript=no`,
        "-device",
        `${machine === "microvm" ? "virtio-net-device" : "virtio-net-pci"},netdev=n0,mac=${spec.network.mac}`
      ]),
  "-chardev",
  `file,id=console,path=${optionValue(spec.consoleLog)},append=on`,
  "-serial",
  "chardev:console",
  "-qmp",
  `unix:${optionValue(qmpSocket)},server=on,wait=off`
]

/** QEMU option values are comma-separated: a literal comma is written twice. */
const optionValue = (value: string) => value.replaceAll(",", ",,")

const driveFile = optionValue
