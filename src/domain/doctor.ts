import { Schema } from "effect"

export const CheckStatus = Schema.Literal("ok", "warn", "fail")
export type CheckStatus = typeof CheckStatus.Type

/**
 * One finding of `banger doctor`. `warn` means banger works but worse (slower, a fallback, a
 * feature of a later step missing); `fail` means something banger needs is missing. Every non-ok
 * result says how to fix it: the package to install or the command to run.
 */
export class DoctorCheck extends Schema.Class<DoctorCheck>("DoctorCheck")({
  name: Schema.String,
  status: CheckStatus,
  detail: Schema.String,
  fix: Schema.optional(Schema.String)
}) {}
