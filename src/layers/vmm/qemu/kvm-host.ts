/**
 * Whether this host runs KVM guests. /dev/kvm opening read-write is necessary but not enough: in
 * some nested setups it opens and guests never get past their firmware. Such a host is remembered
 * in a file under the state dir once a guest showed it, so later VMs go straight to TCG.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"

export const KVM_BROKEN_FILE = "kvm-guests-do-not-run"

export interface KvmHostOptions {
  readonly kvmDevice: string
  /** Where the "KVM guests do not run here" memory lives. */
  readonly hostStateDir: string
  /** Replaces opening the device (tests on hosts without /dev/kvm). */
  readonly deviceOpens?: ((device: string) => boolean) | undefined
}

export interface KvmStatus {
  readonly usable: boolean
  readonly reason: string
}

const openReadWrite = (device: string): boolean => {
  try {
    fs.closeSync(fs.openSync(device, "r+"))
    return true
  } catch {
    return false
  }
}

export const kvmBrokenFile = (options: KvmHostOptions) => path.join(options.hostStateDir, KVM_BROKEN_FILE)

/** What `auto` would pick and why; also what `doctor` reports. */
export const kvmStatus = (options: KvmHostOptions): Effect.Effect<KvmStatus> =>
  Effect.sync(() => {
    let remembered: string | undefined
    try {
      remembered = fs.readFileSync(kvmBrokenFile(options), "utf8").trim()
    } catch {
      remembered = undefined
    }
    if (remembered !== undefined)
      return { usable: false, reason: `KVM guests do not run on this host (${remembered || "remembered"})` }
    const opens = (options.deviceOpens ?? openReadWrite)(options.kvmDevice)
    return opens
      ? { usable: true, reason: `${options.kvmDevice} opens read-write` }
      : { usable: false, reason: `${options.kvmDevice} cannot be opened read-write` }
  })

/** Remembers that a KVM guest did not run here (written atomically: a rename). */
export const rememberKvmBroken = (options: KvmHostOptions, why: string): Effect.Effect<void> =>
  Effect.sync(() => {
    const file = kvmBrokenFile(options)
    fs.mkdirSync(options.hostStateDir, { recursive: true })
    const temp = `${file}.${process.pid}.tmp`
    fs.writeFileSync(temp, `${new Date().toISOString()}: ${why}\n`)
    fs.renameSync(temp, file)
  }).pipe(Effect.catchAllDefect(() => Effect.void))

/** Lets a host be tried again (e.g. after a kernel or hypervisor upgrade). */
export const forgetKvmBroken = (options: KvmHostOptions): Effect.Effect<void> =>
  Effect.sync(() => fs.rmSync(kvmBrokenFile(options), { force: true }))
