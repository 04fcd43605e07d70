import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { Command } from "@effect/cli"
import { Console, Effect } from "effect"
import { BangerClient } from "../rpc/client.js"
import { daemonClientLayer, viaDaemon } from "./daemon-client.js"
import { rootCommand } from "./root-command.js"

/** xdg-open on the PATH and a display to open it on; never on a headless machine or in CI. */
export const browserOpener = (env: NodeJS.ProcessEnv = process.env): string | undefined => {
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY) return undefined
  for (const dir of (env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(dir || ".", "xdg-open")
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      return candidate
    } catch {}
  }
  return undefined
}

export const makeUiCommand = () =>
  Command.make("ui", {}, () =>
    Effect.gen(function* () {
      const root = yield* rootCommand
      // A daemon started for this would not serve the UI: only a running `banger daemon --web` can.
      const client = daemonClientLayer(root.stateDir, { env: { ...process.env, BANGER_NO_AUTOSTART: "1" } })
      const login = yield* Effect.provide(
        Effect.flatMap(BangerClient, (connected) => viaDaemon(connected.web.login())),
        client
      )
      yield* Console.log(login.url)
      const opener = browserOpener()
      if (opener !== undefined)
        yield* Effect.sync(() =>
          spawn(opener, [login.url], { detached: true, stdio: "ignore" })
            .on("error", () => {})
            .unref()
        )
    })
  ).pipe(
    Command.withDescription(
      "print the web UI's URL with a one-time login token (valid 5 minutes), and open it where a browser is available; needs a daemon started with --web"
    )
  )
