/**
 * Reconcile at daemon start, over a real state dir and SQLite store with the process table and
 * VMM faked: what no row knows goes, what a row owns stays, and nothing banger did not start is
 * ever signalled.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { makeNetworkFake, Network } from "../../src/layers/network/network.js"
import { StatePaths } from "../../src/layers/state/state-paths.js"
import { Store } from "../../src/layers/store/store.js"
import { type NamingProcess, ProcessTable } from "../../src/layers/vmm/process-table.js"
import { makeVmmFake, Vmm } from "../../src/layers/vmm/vmm.js"
import { reconcileVms } from "../../src/pipelines/vm/reconcile.js"
import { testVmRow } from "../support/vm-row.js"

const vmRow = (name: string, dir: string, running: boolean) => testVmRow(name, dir, { running, network: true })

describe("reconcileVms", () => {
  it.live("kills VMMs of directories no row knows, removes those directories, and records dead VMMs as stopped", () =>
    Effect.acquireUseRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "banger-reconcile-"))),
      (root) => {
        const state = path.join(root, "state")
        const vms = path.join(state, "vms")
        const dir = (id: string) => path.join(vms, id)
        for (const id of ["aaaa000000000001", "bbbb000000000002", "cccc000000000003", "dddd000000000004"]) {
          fs.mkdirSync(dir(id), { recursive: true })
        }
        const processes: Array<NamingProcess> = [
          // A VMM of a create the daemon died in: no row knows its directory.
          {
            pid: 101,
            startTime: "7",
            argv: ["qemu-system-x86_64", "-qmp", `unix:${dir("cccc000000000003")}/qmp.sock,server=on,wait=off`]
          },
          // Someone reading a console log of that same directory: not a VMM, never touched.
          { pid: 102, startTime: "8", argv: ["tail", "-f", `${dir("cccc000000000003")}/console.log`] },
          // A VMM the row of "alive" owns.
          {
            pid: 103,
            startTime: "9",
            argv: ["firecracker", "--api-sock", `${dir("aaaa000000000001")}/firecracker.sock`]
          }
        ]
        const terminated: Array<NamingProcess> = []
        const fake = makeVmmFake()
        fake.running.add("aaaa000000000001")
        const network = makeNetworkFake()
        // The tap of the VM still running, the tap of the one that died, and a stray one.
        const stray = "bg0123456789abc"
        for (const tap of [vmRow("alive", dir("aaaa000000000001"), true).network!.tap, stray])
          network.taps.set(tap, undefined)
        network.taps.set(vmRow("dead", dir("bbbb000000000002"), true).network!.tap, undefined)
        network.table = true
        const paths = StatePaths.layer(state)
        const layer = Layer.mergeAll(
          Network.layerTest(network),
          paths,
          Store.layer.pipe(Layer.provide(paths)),
          Vmm.layerTest(fake),
          ProcessTable.layerTest(processes, terminated),
          NodeContext.layer
        )
        return Effect.gen(function* () {
          const store = yield* Store
          yield* store.vms.insert(vmRow("alive", dir("aaaa000000000001"), true))
          yield* store.vms.insert(vmRow("dead", dir("bbbb000000000002"), true))
          // A lease of a create the daemon died in: no row holds it.
          yield* store.addresses.allocate("cccc000000000003", { start: 0xac1e0000, end: 0xac1f0000, label: "pool" })
          yield* reconcileVms()
          const alive = vmRow("alive", dir("aaaa000000000001"), true).network!
          expect([...network.taps.keys()]).toEqual([alive.tap])
          expect(network.removed.sort()).toEqual(
            [stray, vmRow("dead", dir("bbbb000000000002"), true).network!.tap].sort()
          )
          expect([...network.users]).toEqual(["aaaa000000000001"])
          expect(network.table).toBe(true)
          expect(yield* store.addresses.list).toEqual([])
          expect(terminated.map((proc) => proc.pid)).toEqual([101])
          expect(fs.readdirSync(vms).sort()).toEqual(["aaaa000000000001", "bbbb000000000002"])
          expect(Option.getOrThrow(yield* store.vms.find("alive")).state).toBe("running")
          const dead = Option.getOrThrow(yield* store.vms.find("dead"))
          expect(dead).toMatchObject({ state: "stopped", pid: null })
          expect(dead.lastExit).toContain("the daemon at start")
        }).pipe(Effect.provide(layer))
      },
      (root) => Effect.sync(() => fs.rmSync(root, { recursive: true, force: true }))
    )
  )
})
