/**
 * Preloaded (`--import`, through NODE_OPTIONS, which refuses `--cpu-prof`) by `npm run bench --
 * --cpu-prof DIR`: profiles the whole process, the CLI or the daemon it starts, and writes
 * `DIR/<pid>-<cli|daemon>.cpuprofile` when it exits. Open the files in Chrome DevTools or VS Code.
 */
import { writeFileSync } from "node:fs"
import { Session } from "node:inspector"

const dir = process.env.BANGER_BENCH_CPU_PROF
if (dir) {
  const session = new Session()
  session.connect()
  session.post("Profiler.enable")
  session.post("Profiler.setSamplingInterval", { interval: 500 })
  session.post("Profiler.start")
  process.on("exit", () => {
    // The in-thread inspector answers synchronously, so this finishes before the process does.
    session.post("Profiler.stop", (error, result) => {
      if (error) return
      const role = process.argv.includes("daemon") ? "daemon" : "cli"
      writeFileSync(`${dir}/${process.pid}-${role}.cpuprofile`, JSON.stringify(result.profile))
    })
  })
}
