/**
 * Headless Debian chromium driven by playwright-core, for the web UI's browser tests. The flags
 * keep it off the (closed) network: no background fetches, sync, component updates or QUIC.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type BrowserContext, chromium } from "playwright-core"

export const CHROMIUM = "/usr/bin/chromium"

export interface TestBrowser {
  readonly context: BrowserContext
  readonly close: () => Promise<void>
}

/**
 * A browser with a fresh profile, removed on close. With `netns`, chromium runs inside that
 * network namespace (through a wrapper that `ip netns exec`s it), so it reaches a daemon's web UI
 * on that namespace's loopback.
 */
export const launchBrowser = async (options: { readonly netns?: string } = {}): Promise<TestBrowser> => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "banger-chromium-"))
  let executablePath = CHROMIUM
  if (options.netns !== undefined) {
    executablePath = path.join(profile, "chromium-in-netns")
    fs.writeFileSync(executablePath, `#!/bin/sh\nexec ip netns exec ${options.netns} ${CHROMIUM} "$@"\n`, {
      mode: 0o755
    })
  }
  const context = await chromium.launchPersistentContext(path.join(profile, "profile"), {
    executablePath,
    headless: true,
    viewport: { width: 1100, height: 800 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync"
    ]
  })
  return {
    context,
    close: async () => {
      await context.close()
      fs.rmSync(profile, { recursive: true, force: true })
    }
  }
}
