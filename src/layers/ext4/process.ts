import { Command, type CommandExecutor } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Chunk, Effect, Stream } from "effect"
import { Ext4Error } from "../../domain/errors.js"

/**
 * One run of an e2fsprogs tool. Exit codes are returned, never turned into failures here: each
 * caller knows what its tool's codes mean. Both pipes are drained concurrently so a chatty tool
 * cannot block on a full stderr pipe.
 */
export interface ToolRun {
  readonly tool: string
  readonly args: ReadonlyArray<string>
  readonly env?: Readonly<Record<string, string>> | undefined
  /** Fed to the tool's stdin; stdin is closed at once when absent. */
  readonly stdin?: Stream.Stream<Uint8Array> | undefined
  /**
   * Send stdout and stderr, in order, to this file instead of pipes. debugfs writes its command
   * echo to stdout and its errors to stderr, both unbuffered, so one destination keeps each error
   * right after its command; and a file, unlike a pipe, does not wake the reader for every
   * fprintf (listing 3,000 directories took 3.3 s through a pipe, 0.3 s into a file).
   */
  readonly outputFile?: string | undefined
}

export interface ToolResult<A> {
  readonly exitCode: number
  readonly stdout: A
  readonly stderr: string
}

/** The environment every tool runs with: C locale so messages and mkfs's name ordering never vary. */
const baseEnv = { LC_ALL: "C", LANG: "C" }

const toCommand = (run: ToolRun) => {
  const command =
    run.outputFile !== undefined
      ? Command.make("sh", "-c", 'out="$1"; shift; exec "$0" "$@" >"$out" 2>&1', run.tool, run.outputFile, ...run.args)
      : Command.make(run.tool, ...run.args)
  return command.pipe(Command.env({ ...baseEnv, ...run.env }), Command.stdin(run.stdin ?? Stream.empty))
}

const spawnFailure = (run: ToolRun) => (error: PlatformError) =>
  new Ext4Error({ tool: run.tool, reason: `could not run ${run.tool}: ${error.message}`, stderr: "" })

export const collectBytes = <E>(stream: Stream.Stream<Uint8Array, E>): Effect.Effect<Buffer, E> =>
  Stream.runCollect(stream).pipe(Effect.map((chunks) => Buffer.concat(Chunk.toReadonlyArray(chunks))))

/** Runs a tool, handing its stdout to `consume` while stderr is collected as text. */
export const runTool = <A>(
  run: ToolRun,
  consume: (stdout: Stream.Stream<Uint8Array, PlatformError>) => Effect.Effect<A, PlatformError>
): Effect.Effect<ToolResult<A>, Ext4Error, CommandExecutor.CommandExecutor> =>
  Effect.scoped(
    Effect.gen(function* () {
      const process = yield* Command.start(toCommand(run))
      const [stdout, stderr, exitCode] = yield* Effect.all(
        [consume(process.stdout), collectBytes(process.stderr), process.exitCode],
        { concurrency: "unbounded" }
      )
      return { exitCode, stdout, stderr: stderr.toString("utf8") }
    })
  ).pipe(Effect.mapError(spawnFailure(run)), Effect.withSpan("ext4.runTool", { attributes: { tool: run.tool } }))

/** Runs a tool and returns everything it printed. */
export const runToolText = (
  run: ToolRun
): Effect.Effect<ToolResult<string>, Ext4Error, CommandExecutor.CommandExecutor> =>
  runTool(run, (stdout) => collectBytes(stdout).pipe(Effect.map((bytes) => bytes.toString("utf8"))))
