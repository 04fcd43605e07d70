/**
 * Boots a configured work disk under qemu (TCG) until the guest powers itself off, which the boot
 * harness in qemu.ts (stop at a marker) cannot show. A human monitor on a Unix socket lets a test
 * press Ctrl-Alt-Del or the ACPI power button once a given line appears on the console.
 */
import { spawn } from "node:child_process"
import * as net from "node:net"
import * as path from "node:path"
import { BootError, kernelCommandLine } from "./qemu.js"

export interface GuestBootOptions {
  readonly kernel: string
  readonly initrd?: string
  readonly disk: string
  readonly init: string
  readonly append?: string
  readonly timeoutMs: number
  /** A directory for the monitor socket. */
  readonly workDir: string
  /** Once a console line starts with `line`, send `command` to the human monitor. */
  readonly onLine?: { readonly line: string; readonly command: string }
}

export interface GuestBootResult {
  readonly serial: string
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly durationMs: number
}

const sendMonitor = (socket: string, command: string) =>
  new Promise<void>((resolve, reject) => {
    const connection = net.connect(socket)
    connection.once("error", reject)
    connection.once("connect", () => {
      connection.write(`${command}\n`)
      // The monitor answers with a prompt; give it a moment, then hang up.
      setTimeout(() => {
        connection.end()
        resolve()
      }, 500)
    })
  })

/** Resolves when qemu exits by itself; rejects (after SIGKILL) when it outlives the timeout. */
export const bootUntilExit = (options: GuestBootOptions): Promise<GuestBootResult> => {
  const monitor = path.join(options.workDir, `monitor-${process.pid}-${Date.now()}.sock`)
  const args = [
    ...["-accel", "tcg", "-m", "512", "-smp", "1", "-display", "none", "-no-reboot", "-nic", "none"],
    ...["-serial", "stdio", "-monitor", `unix:${monitor},server=on,wait=off`],
    ...["-kernel", options.kernel, ...(options.initrd ? ["-initrd", options.initrd] : [])],
    ...["-drive", `file=${options.disk},format=raw,if=virtio`],
    ...["-append", kernelCommandLine({ init: options.init, append: options.append ?? "" })]
  ]
  const started = Date.now()
  const child = spawn("qemu-system-x86_64", args, { stdio: ["pipe", "pipe", "pipe"] })
  const killOnExit = () => child.kill("SIGKILL")
  process.once("exit", killOnExit)
  let serial = ""
  let stderr = ""
  let sent = false
  return new Promise<GuestBootResult>((resolve, reject) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs)
    child.stdout.on("data", (chunk: Buffer) => {
      serial += chunk.toString("latin1")
      const trigger = options.onLine
      if (trigger && !sent && serial.split(/\r?\n/).some((line) => line.startsWith(trigger.line))) {
        sent = true
        sendMonitor(monitor, trigger.command).catch((error) => {
          stderr += `monitor: ${String(error)}`
        })
      }
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-8000)
    })
    child.on("error", reject)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      process.removeListener("exit", killOnExit)
      child.stdin.destroy()
      const durationMs = Date.now() - started
      if (signal === "SIGKILL" && durationMs >= options.timeoutMs) {
        reject(new BootError(`qemu still running after ${options.timeoutMs} ms${stderr ? `: ${stderr}` : ""}`, serial))
      } else resolve({ serial: serial.replaceAll("\r", ""), code, signal, durationMs })
    })
  })
}
