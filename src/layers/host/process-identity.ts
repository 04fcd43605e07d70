import * as fs from "node:fs"

/**
 * A process named so that it cannot be mistaken for another: its pid plus its start time
 * (/proc/<pid>/stat field 22, clock ticks since boot). A pid alone lies twice: `kill(pid, 0)`
 * succeeds on a zombie nobody has reaped yet, and after a reboot or enough forks the same pid
 * belongs to an unrelated process.
 */

/** The start time of `pid`, or undefined when it is gone or a zombie (dead, only not yet reaped). */
export const readStartTime = (pid: number): string | undefined => {
  let stat: string
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1")
  } catch {
    return undefined
  }
  // comm (field 2) may hold spaces and parentheses: the fields after it start after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // fields[0] is field 3 (state); field 22 is fields[19].
  if (fields[0] === "Z" || fields[0] === "X") return undefined
  return fields[19]
}

/** Whether `pid` is still the very process that had `startTime`. */
export const isSameProcess = (pid: number, startTime: string): boolean => readStartTime(pid) === startTime

let own: string | undefined

/** This process as `pid.starttime`: what leases and temp names record. */
export const ownProcessIdentity = (): string => {
  own ??= `${process.pid}.${readStartTime(process.pid) ?? "0"}`
  return own
}

/**
 * Whether the process an identity names (`pid.starttime`, or a bare pid from an older banger)
 * still runs. A bare pid is trusted only as far as it can be: alive and not a zombie.
 */
export const isIdentityAlive = (identity: string): boolean => {
  const match = /^(\d+)(?:\.(\d+))?$/.exec(identity.trim())
  if (match === null) return false
  const pid = Number(match[1])
  if (!(pid > 0)) return false
  const startTime = match[2]
  return startTime === undefined ? readStartTime(pid) !== undefined : isSameProcess(pid, startTime)
}
