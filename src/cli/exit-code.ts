import { Data } from "effect"

/** Ends the CLI with this exit status and no error line: the command has already said everything. */
export class ExitCode extends Data.TaggedError("ExitCode")<{ readonly code: number }> {}
