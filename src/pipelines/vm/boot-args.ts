import type { VmmChoice } from "./choose-vmm.js"

export interface BootArgsInput {
  readonly vmm: VmmChoice
  /** `/.banger/init` for images booted with banger's built-in init; absent boots the image's own. */
  readonly init?: string | undefined
  /** `ip=…` when the kernel configures eth0 itself (see kernel-ip-config). */
  readonly ip?: string | undefined
}

/**
 * The guest kernel's command line. ttyS0 is the console banger logs and waits on; `net.ifnames=0`
 * keeps udev from renaming eth0; `panic=1` with `reboot=k` turns a kernel panic into a VMM exit
 * (both VMMs run with reboot → exit), so a broken guest ends instead of hanging.
 */
export const bootArgs = (input: BootArgsInput): string =>
  [
    "console=ttyS0",
    "reboot=k",
    "panic=1",
    "root=/dev/vda",
    "rw",
    "net.ifnames=0",
    // Firecracker has no PCI bus; probing for one only costs boot time.
    ...(input.vmm === "firecracker" ? ["pci=off"] : []),
    ...(input.ip === undefined ? [] : [input.ip]),
    ...(input.init === undefined ? [] : [`init=${input.init}`])
  ].join(" ")
