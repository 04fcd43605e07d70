/**
 * A daemon process for tests: the real daemon layer and lifecycle (lock, recovery, socket,
 * signals) over a real state dir, with the fake pull of daemon-harness so pulls are slow and
 * need no registry. Configured by environment; bundled and run by daemon-process.ts.
 */

import { NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { serveUntilSignal } from "../../src/daemon/run.js"
import { daemonLayer } from "../../src/daemon/server.js"
import { fakeKernelPull, fakePull, testServices } from "./daemon-harness.js"

const env = process.env
const stateDir = env.FIXTURE_STATE_DIR!
const daemon = daemonLayer(
  {
    stateDir,
    socket: env.FIXTURE_SOCKET!,
    group: env.FIXTURE_GROUP || undefined,
    operationTtl: `${Number(env.FIXTURE_OP_TTL_MS ?? 3_600_000)} millis`,
    // No catalog: plain names like "debian" stay references, whatever the built-in catalog lists.
    catalog: `${stateDir}/no-catalog.json`
  },
  testServices(stateDir),
  fakePull({
    layers: Number(env.FIXTURE_LAYERS ?? 2),
    steps: Number(env.FIXTURE_STEPS ?? 5),
    stepDelay: `${Number(env.FIXTURE_STEP_MS ?? 20)} millis`
  }),
  fakeKernelPull
)

NodeRuntime.runMain(serveUntilSignal(Layer.launch(daemon)))
