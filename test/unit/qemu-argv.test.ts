import { describe, expect, it } from "vitest"
import type { VmLaunchSpec } from "../../src/domain/vmm.js"
import { machineFor, qemuArgv } from "../../src/layers/vmm/qemu/qemu-argv.js"

const spec: VmLaunchSpec = {
  vmId: "vm1",
  backend: "qemu",
  accel: "auto",
  cpus: 2,
  memoryMib: 512,
  kernel: "/k/vmlinuz",
  kernelFormat: "bzImage",
  initrd: "/k/initrd.img",
  bootArgs: "console=ttyS0 root=/dev/vda rw",
  rootDisk: "/vms/vm1/disk.ext4",
  runDir: "/vms/vm1",
  consoleLog: "/vms/vm1/console.log"
}

describe("qemuArgv", () => {
  it("a distribution bzImage under TCG: pc machine, virtio-pci disk, -cpu max, console and QMP on files", () => {
    expect(
      qemuArgv({
        bin: "qemu-system-x86_64",
        spec,
        accel: "tcg",
        machine: machineFor(spec),
        qmpSocket: "/vms/vm1/qmp.sock"
      })
    ).toEqual([
      "qemu-system-x86_64",
      "-name",
      "banger-vm1",
      "-nodefaults",
      "-nographic",
      "-no-reboot",
      "-machine",
      "pc",
      "-accel",
      "tcg",
      "-cpu",
      "max",
      "-smp",
      "2",
      "-m",
      "512M",
      "-kernel",
      "/k/vmlinuz",
      "-initrd",
      "/k/initrd.img",
      "-append",
      "console=ttyS0 root=/dev/vda rw",
      "-drive",
      "id=root,file=/vms/vm1/disk.ext4,format=raw,if=none,cache=writeback,discard=unmap",
      "-device",
      "virtio-blk-pci,drive=root",
      "-chardev",
      "file,id=console,path=/vms/vm1/console.log,append=on",
      "-serial",
      "chardev:console",
      "-qmp",
      "unix:/vms/vm1/qmp.sock,server=on,wait=off"
    ])
  })

  it("an ELF vmlinux under KVM: microvm with virtio-mmio, -cpu host, no initrd flag without an initrd", () => {
    const elf: VmLaunchSpec = { ...spec, kernelFormat: "elf", kernel: "/k/vmlinux", initrd: undefined }
    expect(machineFor(elf)).toBe("microvm")
    const argv = qemuArgv({ bin: "/opt/qemu", spec: elf, accel: "kvm", machine: machineFor(elf), qmpSocket: "/q.sock" })
    expect(argv[0]).toBe("/opt/qemu")
    expect(argv).not.toContain("-initrd")
    const flagValue = (flag: string) => argv[argv.indexOf(flag) + 1]
    expect(flagValue("-machine")).toBe("microvm")
    expect(flagValue("-accel")).toBe("kvm")
    expect(flagValue("-cpu")).toBe("host")
    expect(flagValue("-device")).toBe("virtio-blk-device,drive=root")
    expect(flagValue("-kernel")).toBe("/k/vmlinux")
  })

  it("doubles commas in paths, which QEMU would otherwise read as option separators", () => {
    const odd: VmLaunchSpec = { ...spec, rootDisk: "/a,b/disk", consoleLog: "/a,b/console.log" }
    const argv = qemuArgv({ bin: "q", spec: odd, accel: "tcg", machine: "pc", qmpSocket: "/a,b/qmp.sock" })
    expect(argv).toContain("id=root,file=/a,,b/disk,format=raw,if=none,cache=writeback,discard=unmap")
    expect(argv).toContain("file,id=console,path=/a,,b/console.log,append=on")
    expect(argv).toContain("unix:/a,,b/qmp.sock,server=on,wait=off")
  })

  it("puts the guest's eth0 on the VM's existing tap: virtio-net-pci on pc, virtio-net-device on microvm, no scripts", () => {
    const network = { tap: "bg0123456789abc", mac: "02:aa:bb:cc:dd:ee" }
    const pc = qemuArgv({ bin: "q", spec: { ...spec, network }, accel: "tcg", machine: "pc", qmpSocket: "/q.sock" })
    const at = pc.indexOf("-netdev")
    expect(pc.slice(at, at + 4)).toEqual([
      "-netdev",
      "tap,id=n0,ifname=bg0123456789abc,script=no,downscript=no",
      "-device",
      "virtio-net-pci,netdev=n0,mac=02:aa:bb:cc:dd:ee"
    ])
    const micro = qemuArgv({ bin: "q", spec: { ...spec, network }, accel: "kvm", machine: "microvm", qmpSocket: "/q" })
    expect(micro).toContain("virtio-net-device,netdev=n0,mac=02:aa:bb:cc:dd:ee")
    expect(qemuArgv({ bin: "q", spec, accel: "tcg", machine: "pc", qmpSocket: "/q" })).not.toContain("-netdev")
  })
})
