/**
 * `vm.sshTarget` over a real state dir and SQLite store (the VMM faked): what `vm ssh` is told for
 * a running VM, and the one-line refusals for a stopped one, one without an address and one that
 * banger never set ssh up for.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SshTarget } from "../../src/domain/ssh.js"
import { Network } from "../../src/layers/network/network.js"
import { StatePaths } from "../../src/layers/state/state-paths.js"
import { Store } from "../../src/layers/store/store.js"
import { makeVmmFake, Vmm } from "../../src/layers/vmm/vmm.js"
import { vmSshTarget } from "../../src/pipelines/vm/ssh-target.js"
import { testVmRow } from "../support/vm-row.js"

describe("vmSshTarget", () => {
  it.live("answers a running VM's address, banger's key and the VM's own known_hosts; refuses the rest", () =>
    Effect.acquireUseRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "banger-ssh-target-"))),
      (root) => {
        const state = path.join(root, "state")
        const dir = (id: string) => path.join(state, "vms", id)
        const rows = [
          testVmRow("dev", dir("aaaa000000000001"), { running: true, network: true }),
          testVmRow("asleep", dir("bbbb000000000002"), { running: false, network: true }),
          testVmRow("offline", dir("cccc000000000003"), { running: true, network: false }),
          testVmRow("old", dir("dddd000000000004"), { running: true, network: true })
        ]
        for (const vm of rows) fs.mkdirSync(vm.dir, { recursive: true })
        // "old" has no known_hosts: a VM made before banger set ssh up.
        for (const vm of rows.slice(0, 3))
          fs.writeFileSync(path.join(vm.dir, "known_hosts"), "banger-x ssh-ed25519 AAAA\n")
        const vmm = makeVmmFake()
        for (const vm of rows) if (vm.state === "running") vmm.running.add(vm.id)
        const paths = StatePaths.layer(state)
        const layer = Layer.mergeAll(
          paths,
          Store.layer.pipe(Layer.provide(paths)),
          Vmm.layerTest(vmm),
          Network.layerTest(),
          NodeContext.layer
        )
        const refusal = (name: string, allowStopped?: boolean) =>
          Effect.map(Effect.flip(vmSshTarget(name, { allowStopped })), (error) => error.message)
        return Effect.gen(function* () {
          const store = yield* Store
          for (const vm of rows) yield* store.vms.insert(vm)
          expect(yield* vmSshTarget("dev")).toEqual(
            new SshTarget({
              name: "dev",
              address: rows[0]!.network!.guestAddress,
              port: 22,
              identityFile: path.join(state, "ssh", "id_ed25519"),
              knownHostsFile: path.join(rows[0]!.dir, "known_hosts"),
              hostKeyAlias: "banger-aaaa000000000001",
              running: true
            })
          )
          expect(yield* refusal("asleep")).toBe(
            'cannot ssh into VM "asleep": it is stopped (start it with: banger vm start asleep)'
          )
          // vm show prints the command of a stopped VM all the same.
          expect(yield* vmSshTarget("asleep", { allowStopped: true })).toMatchObject({ running: false })
          expect(yield* refusal("offline")).toBe('cannot ssh into VM "offline": it has no network address')
          expect(yield* refusal("old")).toBe(
            'cannot ssh into VM "old": banger did not set up ssh for it (no host key on record)'
          )
          expect(yield* refusal("nope")).toContain('VM "nope" not found')
        }).pipe(Effect.provide(layer))
      },
      (root) => Effect.sync(() => fs.rmSync(root, { recursive: true, force: true }))
    )
  )
})
