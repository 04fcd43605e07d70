/**
 * Run as its own Node process (`node --import tsx vmm-launch-child.ts SPEC_JSON HOST_STATE_DIR`):
 * launches one VM with the real Vmm layer, prints its VmProcess as JSON and exits, as a daemon
 * that dies after a create would. The VMM must outlive it.
 */
import { Effect } from "effect"
import type { VmLaunchSpec } from "../../src/domain/vmm.js"
import { Vmm } from "../../src/layers/vmm/vmm.js"

const [specJson, hostStateDir] = process.argv.slice(2)
const spec = JSON.parse(specJson!) as VmLaunchSpec

const proc = await Effect.runPromise(
  Effect.scoped(Effect.flatMap(Vmm, (vmm) => vmm.launch(spec))).pipe(
    Effect.provide(Vmm.layer({ hostStateDir: hostStateDir! }))
  )
)
process.stdout.write(`${JSON.stringify(proc)}\n`)
