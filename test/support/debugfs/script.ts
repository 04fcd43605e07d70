/**
 * Writing lines for `debugfs -f`. Its parser (lib/ss) splits on spaces and tabs; inside double
 * quotes everything is literal except `""`, which stands for one quote. There is no backslash
 * escape. The script reader cuts each line at its first `\n` or `\r` and reads at most
 * BUFSIZ - 1 bytes per line, and a line starting with `#` is a comment: every line written here
 * starts with a command name, and names containing `\n` or `\r` cannot be written at all.
 */

/** glibc's BUFSIZ, less the newline and the terminating NUL. */
export const MAX_LINE_BYTES = 8190

export const quote = (text: string): string => `"${text.replaceAll('"', '""')}"`

/** Whether `text` survives a trip through a script line as one argument. */
export const expressible = (text: string): boolean => !/[\n\r\0]/.test(text)

export const lineFits = (line: string): boolean => Buffer.byteLength(line, "utf8") <= MAX_LINE_BYTES

/** debugfs's inode-number syntax: bypasses path lookup entirely. */
export const inodeSpec = (ino: number): string => `<${ino}>`

/** The full i_mode type bits for each entry type. */
export const typeBits = {
  file: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  char: 0o020000,
  block: 0o060000,
  fifo: 0o010000
} as const

export const S_IFMT = 0o170000

export const octal = (value: number): string => `0${value.toString(8)}`
