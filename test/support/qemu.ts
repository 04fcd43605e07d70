/**
 * Boots a raw ext4 root filesystem under qemu (TCG, no network) and waits for a marker on the
 * serial console: the end-to-end proof that an image banger produced really boots into userspace.
 *
 * TCG, not KVM: /dev/kvm exists on these machines but does not boot stock kernels.
 */

import { spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"

export const BOOT_MARKER = "BANGER-BOOT-OK"

/** Where the test init script lives in a rootfs; /sbin is a symlink to usr/sbin on merged-usr Debian. */
export const TEST_INIT_PATH = "/sbin/banger-test-init"

export interface BootOptions {
  readonly kernel: string
  readonly initrd?: string
  /** Raw disk image holding the root filesystem (attached read-write as /dev/vda). */
  readonly rootfs: string
  /** Resolves once a serial line starts with this (default BOOT_MARKER). */
  readonly marker?: string
  /** Appended to the default kernel command line. */
  readonly append?: string
  /** Replaces `init=` (default TEST_INIT_PATH). */
  readonly init?: string
  readonly timeoutMs: number
  readonly memoryMb?: number
  /** Also write the raw serial output here, e.g. for a failing CI run. */
  readonly serialLog?: string
  /** Attach the disk read-only (`-snapshot`), so a boot never modifies the image. */
  readonly snapshot?: boolean
}

export interface BootResult {
  /** Serial console output up to and including the marker line. */
  readonly serial: string
  /** From spawning qemu to seeing the marker. */
  readonly durationMs: number
  /** The marker line itself, without line ending. */
  readonly markerLine: string
}

export class BootError extends Error {
  constructor(
    message: string,
    readonly serial: string
  ) {
    super(`${message}\n--- last serial output ---\n${serial.slice(-6000)}`)
    this.name = "BootError"
  }
}

/** The newest Debian cloud kernel and its initrd from /boot. */
export const findCloudKernel = async (
  bootDir = "/boot"
): Promise<{ kernel: string; initrd: string; version: string }> => {
  const names = await fs.readdir(bootDir).catch(() => [] as Array<string>)
  const versions = names
    .filter((name) => /^vmlinuz-.*-cloud-amd64$/.test(name))
    .map((name) => name.slice("vmlinuz-".length))
    .filter((version) => names.includes(`initrd.img-${version}`))
    .sort(compareVersions)
  const version = versions.at(-1)
  if (!version)
    throw new Error(`no vmlinuz-*-cloud-amd64 with an initrd in ${bootDir} (apt-get install linux-image-cloud-amd64)`)
  return {
    kernel: path.join(bootDir, `vmlinuz-${version}`),
    initrd: path.join(bootDir, `initrd.img-${version}`),
    version
  }
}

/** Numeric-aware comparison, so 6.1.0-10 sorts after 6.1.0-9. */
const compareVersions = (a: string, b: string) => a.localeCompare(b, "en", { numeric: true })

/**
 * The kernel command line. `panic=-1` plus qemu's `-no-reboot` turn a kernel panic (e.g. init
 * missing or exiting) into a prompt qemu exit instead of a hang until the timeout.
 */
export const kernelCommandLine = (options: Pick<BootOptions, "append" | "init">) =>
  [
    "console=ttyS0",
    "root=/dev/vda",
    "rw",
    `init=${options.init ?? TEST_INIT_PATH}`,
    "panic=-1",
    // Quieter and faster under TCG: no graphical console probing, no slow RNG wait messages.
    "loglevel=4",
    options.append ?? ""
  ]
    .filter(Boolean)
    .join(" ")

/**
 * Boots and resolves when a serial line starts with the marker; then stops qemu (by its own pid)
 * and waits for it to exit. Rejects with the serial tail if qemu exits first or time runs out.
 */
export const bootToMarker = (options: BootOptions): Promise<BootResult> => {
  const marker = options.marker ?? BOOT_MARKER
  const args = [
    "-accel",
    "tcg",
    "-m",
    String(options.memoryMb ?? 512),
    "-smp",
    "1",
    "-nographic",
    "-no-reboot",
    "-nic",
    "none",
    "-kernel",
    options.kernel,
    ...(options.initrd ? ["-initrd", options.initrd] : []),
    "-drive",
    `file=${options.rootfs},format=raw,if=virtio`,
    ...(options.snapshot ? ["-snapshot"] : []),
    "-append",
    kernelCommandLine(options)
  ]
  const started = Date.now()
  // stdin stays an open pipe we never write to: with -nographic the serial reads it, and EOF on a
  // closed stdin is not something to depend on.
  const child = spawn("qemu-system-x86_64", args, { stdio: ["pipe", "pipe", "pipe"] })
  const log = options.serialLog ? fs.open(options.serialLog, "w") : undefined

  return new Promise<BootResult>((resolve, reject) => {
    let serial = ""
    let stderr = ""
    let settled = false
    let scanned = 0

    const exited = new Promise<void>((done) => child.once("close", () => done()))
    // If the test process goes away first (vitest tearing a worker down), take qemu with it.
    const killOnExit = () => child.kill("SIGKILL")
    process.once("exit", killOnExit)

    const finish = async (outcome: () => void) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        // SIGTERM lets qemu exit cleanly; SIGKILL if it does not within a few seconds.
        child.kill("SIGTERM")
        const escalate = setTimeout(() => child.kill("SIGKILL"), 5000)
        await exited
        clearTimeout(escalate)
      }
      process.removeListener("exit", killOnExit)
      child.stdin?.destroy()
      await log?.then((handle) => handle.close()).catch(() => undefined)
      outcome()
    }

    const timer = setTimeout(() => {
      void finish(() => reject(new BootError(`no "${marker}" within ${options.timeoutMs} ms`, serial)))
    }, options.timeoutMs)

    child.stdout.on("data", (chunk: Buffer) => {
      const text = chunk.toString("latin1")
      serial += text
      void log?.then((handle) => handle.write(text, null, "latin1")).catch(() => undefined)
      if (settled) return
      // Only whole lines count, so a marker split across chunks is still seen exactly once.
      const end = serial.lastIndexOf("\n")
      if (end < scanned) return
      const lines = serial.slice(scanned, end).split("\n")
      scanned = end + 1
      const line = lines.map((l) => l.replace(/\r$/, "")).find((l) => l.startsWith(marker))
      if (line !== undefined) {
        const upTo = serial.indexOf(line) + line.length
        const durationMs = Date.now() - started
        void finish(() => resolve({ serial: serial.slice(0, upTo + 1), durationMs, markerLine: line }))
      }
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-8000)
    })
    child.on("error", (error) => void finish(() => reject(error)))
    child.on("close", (code, signal) => {
      void finish(() =>
        reject(
          new BootError(
            `qemu exited (${signal ?? code}) before "${marker}"${stderr ? `: ${stderr.trim()}` : ""}`,
            serial
          )
        )
      )
    })
  })
}

export interface TestInitOptions {
  readonly marker?: string
  /** Shell lines run before the marker; print `BANGER-CHECK key=value` lines for tests to read. */
  readonly checks?: ReadonlyArray<string>
}

/**
 * A /bin/sh init for a test rootfs: mounts the pseudo filesystems, prints facts that only a running
 * userspace can know, prints the marker line and powers off (sysrq first: it needs nothing from the
 * rootfs). The marker line carries `uname -r` and `id -u` so the result alone proves userspace ran.
 */
export const testInitScript = (options: TestInitOptions = {}): string => `#!/bin/sh
# banger test init: prove userspace runs, then power off. Never used outside tests.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
if [ -r /etc/os-release ]; then
  . /etc/os-release
  echo "BANGER-CHECK os=$ID-$VERSION_ID"
fi
echo "BANGER-CHECK root=$(awk '$2 == "/" { print $1 ":" $3 ":" substr($4, 1, 2) }' /proc/mounts 2>/dev/null | tail -n 1)"
${(options.checks ?? []).join("\n")}
echo "${options.marker ?? BOOT_MARKER} kernel=$(uname -r) uid=$(id -u)"
sync
echo o > /proc/sysrq-trigger
sleep 10
poweroff -f
`

/** `BANGER-CHECK key=value` lines of a serial log, as a map. */
export const bootChecks = (serial: string): Map<string, string> => {
  const checks = new Map<string, string>()
  for (const match of serial.matchAll(/^BANGER-CHECK ([\w.-]+)=(.*?)\r?$/gm)) checks.set(match[1]!, match[2]!)
  return checks
}
