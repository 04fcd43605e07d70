import * as path from "node:path"
import { Vm } from "../../src/domain/vm.js"
import { vmNetworkAt } from "../../src/layers/network/address.js"

/**
 * A QEMU VM row whose id is its directory's name, for tests over a real state dir: running ones
 * carry a pid and QMP socket no process has; networked ones an address derived from the name.
 */
export const testVmRow = (
  name: string,
  dir: string,
  options: { readonly running: boolean; readonly network: boolean }
) =>
  new Vm({
    id: path.basename(dir),
    name,
    image: "img",
    imageId: "img-id",
    vmm: "qemu",
    vmmReason: "test",
    kernelFormat: "bzImage",
    init: null,
    accel: "tcg",
    cpus: 1,
    memoryMib: 256,
    diskBytes: 2 ** 30,
    dir,
    state: options.running ? "running" : "stopped",
    pid: options.running ? 4_000_000 : null,
    pidStartTime: options.running ? "1" : null,
    runningAccel: options.running ? "tcg" : null,
    accelReason: null,
    controlSocket: options.running ? path.join(dir, "qmp.sock") : null,
    lastExit: null,
    createdAt: "2026-12-05T00:00:00.000Z",
    startedAt: null,
    stoppedAt: null,
    network: options.network ? vmNetworkAt(path.basename(dir), 0xac1e0000 + 4 * name.length) : null
  })
