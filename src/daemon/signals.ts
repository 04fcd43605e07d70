const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const

/**
 * Makes `listener` the only listener of SIGINT and SIGTERM (the CLI runtime's turns a signal into
 * an interrupt); the returned function removes it. Ours is added before the others are removed:
 * node closes a signal's handle when its last listener goes, and a signal libuv has caught but not
 * yet delivered goes with it. Removing first lost a SIGTERM sent while the daemon was starting (it
 * kept serving; seen in CI).
 */
export const takeOverSignals = (listener: (signal: NodeJS.Signals) => void): (() => void) => {
  for (const signal of STOP_SIGNALS) {
    const others = process.listeners(signal)
    process.on(signal, listener)
    for (const other of others) process.off(signal, other)
  }
  return () => {
    for (const signal of STOP_SIGNALS) process.off(signal, listener)
  }
}
