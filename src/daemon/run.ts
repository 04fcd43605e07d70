import { NodeContext } from "@effect/platform-node"
import { Layer } from "effect"
import { appLayer } from "../app/app-layer.js"
import { pullImage } from "../pipelines/pull/pull.js"
import { type DaemonConfig, daemonLayer } from "./server.js"

/** The real daemon: the pipeline's own services for the state dir, serving until interrupted. */
export const runDaemon = (config: DaemonConfig) =>
  Layer.launch(daemonLayer(config, appLayer(config.stateDir).pipe(Layer.provideMerge(NodeContext.layer)), pullImage))
