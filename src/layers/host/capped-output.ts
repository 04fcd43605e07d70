import type { Readable } from "node:stream"

/**
 * Keeps what a child writes to `streams`, up to about `limit` bytes (its messages, not a flood),
 * for a failure's reason; the text, trimmed, whenever asked.
 */
export const cappedOutput = (streams: ReadonlyArray<Readable>, limit: number): (() => string) => {
  const chunks: Array<Buffer> = []
  let kept = 0
  for (const stream of streams) {
    stream.on("data", (chunk: Buffer) => {
      if (kept < limit) {
        chunks.push(chunk)
        kept += chunk.length
      }
    })
  }
  return () => Buffer.concat(chunks).toString("utf8").trim()
}
