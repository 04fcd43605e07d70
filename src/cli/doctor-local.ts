import { Effect } from "effect"
import { doctorLayer } from "../app/app-layer.js"
import { type DaemonObservation, runDoctor } from "../pipelines/doctor/doctor.js"

/** `banger doctor`'s checks run in the CLI's own process, as a daemon would run them. */
export const runDoctorLocally = (stateDir: string, catalog: string | undefined, daemon: DaemonObservation) =>
  runDoctor({ catalog, daemon }).pipe(Effect.provide(doctorLayer(stateDir)))
