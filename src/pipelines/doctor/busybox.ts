import { Effect } from "effect"
import { HostProbe } from "../../layers/host/host-probe.js"
import { fail, firstLine, ok } from "./result.js"

/** The busybox banger copies into images that have no init of their own (Debian's busybox-static puts it here). */
export const HOST_BUSYBOX = "/bin/busybox"

const INSTALL = "apt-get install busybox-static (it replaces the dynamically linked busybox package)"
const WHY = "images without their own init (debian, alpine, distroless) cannot boot"

/** The built-in guest init runs a busybox with no libraries around it: it must be statically linked. */
export const checkBusybox = Effect.gen(function* () {
  const host = yield* HostProbe
  const file = yield* host.stat(HOST_BUSYBOX)
  if (file === undefined || file.kind !== "file") return fail("busybox", `${HOST_BUSYBOX} not found: ${WHY}`, INSTALL)
  const linkage = yield* host.linkage(HOST_BUSYBOX)
  if (linkage !== "static") {
    const what = linkage === "dynamic" ? "is dynamically linked" : "is not an ELF executable"
    return fail("busybox", `${HOST_BUSYBOX} ${what}: ${WHY}`, INSTALL)
  }
  const version = /BusyBox (v\S+)/.exec(firstLine((yield* host.run(HOST_BUSYBOX, ["--help"])).output))?.[1]
  return ok("busybox", `${HOST_BUSYBOX}: statically linked${version ? `, ${version}` : ""}`)
})
