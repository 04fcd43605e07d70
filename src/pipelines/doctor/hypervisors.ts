import { Effect } from "effect"
import { HostProbe } from "../../layers/host/host-probe.js"
import { kvmState } from "./kvm.js"
import { fail, ok, probeTool, type Tool, warn } from "./result.js"

/** Where each hypervisor comes from: an environment variable naming the binary, else PATH. */
export const FIRECRACKER = { env: "FIRECRACKER_BIN", command: "firecracker", version: /Firecracker v(\S+)/ }
export const QEMU = { env: "BANGER_QEMU_BIN", command: "qemu-system-x86_64", version: /QEMU emulator version (\S+)/ }

const INSTALL_FIRECRACKER =
  "install Firecracker: take `firecracker` from a release at https://github.com/firecracker-microvm/firecracker/releases and put it on PATH (or set FIRECRACKER_BIN)"
const INSTALL_QEMU = "apt-get install qemu-system-x86"

const locate = (binary: typeof FIRECRACKER) =>
  Effect.gen(function* () {
    const given = yield* (yield* HostProbe).env(binary.env)
    const tool = yield* probeTool(given ?? binary.command, ["--version"], binary.version)
    const where = given === undefined ? `${binary.env} unset, no ${binary.command} on PATH` : `${binary.env}=${given}`
    return { tool, where }
  })

const describe = (found: { readonly tool: Tool; readonly where: string }) =>
  found.tool._tag === "Missing"
    ? `not found (${found.where})`
    : found.tool._tag === "Broken"
      ? `${found.tool.path} does not run: ${found.tool.output}`
      : `${found.tool.path}: ${found.tool.version}`

const runs = (tool: Tool) => tool._tag === "Found"

/** Firecracker, the production backend; only a warning while QEMU can run the VMs instead. */
export const checkFirecracker = Effect.gen(function* () {
  const firecracker = yield* locate(FIRECRACKER)
  const qemu = yield* locate(QEMU)
  const status = runs(qemu.tool) ? warn : fail
  const fallback = runs(qemu.tool) ? "VMs run on QEMU" : "and there is no QEMU to run VMs"
  if (!runs(firecracker.tool)) {
    return status(
      "firecracker",
      `${describe(firecracker)}: ${fallback}`,
      runs(qemu.tool) ? INSTALL_FIRECRACKER : `${INSTALL_FIRECRACKER}, or ${INSTALL_QEMU}`
    )
  }
  const kvm = yield* kvmState
  if (kvm._tag !== "Usable") {
    return status(
      "firecracker",
      `${describe(firecracker)}, but it needs a usable /dev/kvm (see kvm): ${fallback}`,
      runs(qemu.tool) ? "see the kvm check" : `see the kvm check, or ${INSTALL_QEMU}`
    )
  }
  return ok("firecracker", describe(firecracker))
})

/** QEMU, the backend that runs anywhere (TCG without KVM); only a warning while Firecracker can run the VMs. */
export const checkQemu = Effect.gen(function* () {
  const qemu = yield* locate(QEMU)
  if (runs(qemu.tool)) return ok("qemu", describe(qemu))
  const firecracker = yield* locate(FIRECRACKER)
  const kvm = yield* kvmState
  if (runs(firecracker.tool) && kvm._tag === "Usable") {
    return warn("qemu", `${describe(qemu)}: VMs run on Firecracker, with no fallback for bzImage kernels`, INSTALL_QEMU)
  }
  return fail("qemu", `${describe(qemu)}, and Firecracker cannot run VMs here (see firecracker)`, INSTALL_QEMU)
})
