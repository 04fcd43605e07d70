import { Console, Effect } from "effect"

/** Renders rows as an aligned text table (no borders: easy to read and to grep). */
export const table = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? "").length))
  )
  const line = (cells: ReadonlyArray<string>) =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!)))
      .join("  ")
      .trimEnd()
  return [line(headers), ...rows.map(line)].join("\n")
}

export const printJson = (value: unknown) => Console.log(JSON.stringify(value, null, 2))

export { formatSize as formatBytes } from "../domain/size.js"

/** `key: value` lines for `show` commands. */
export const details = (fields: ReadonlyArray<readonly [string, string | number | boolean | null]>) =>
  Effect.forEach(fields, ([key, value]) => Console.log(`${`${key}:`.padEnd(16)}${value ?? "-"}`), { discard: true })
