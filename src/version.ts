/** banger's version, shared by the CLI and the daemon (`daemon.info`). */
export const VERSION = "0.1.0"
