import { Either, ParseResult, Schema } from "effect"
import { PullPayload, VmCreatePayload } from "../rpc/schemas.js"
import type { FieldErrors } from "./layout.js"

/** A submitted form's text fields, trimmed; `_csrf` is checked before a form gets here. */
export type FormValues = Readonly<Record<string, string>>

/** The payload, or the fields the payload Schema rejected with its own messages. */
export type Decoded<A> = Either.Either<A, FieldErrors>

const given = (values: FormValues, name: string): string | undefined => {
  const value = values[name]?.trim()
  return value === undefined || value === "" ? undefined : value
}

/** A number field: numeric text becomes a number; anything else is left for the Schema to refuse. */
const numeric = (values: FormValues, name: string): unknown => {
  const value = given(values, name)
  if (value === undefined) return undefined
  return /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value
}

const withoutUndefined = (fields: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined))

const decodeWith =
  <A, I>(schema: Schema.Schema<A, I>) =>
  (input: unknown): Decoded<A> =>
    Either.mapLeft(Schema.decodeUnknownEither(schema, { errors: "all" })(input), (error) => {
      const errors: Record<string, string> = {}
      for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
        const field = String(issue.path[0] ?? "form")
        errors[field] ??= issue.message
      }
      return errors
    })

/**
 * The image pull form → `image.pull`'s payload. The kernel field names a stored kernel, or is an
 * absolute path to a kernel file (with an optional initrd path).
 */
export const decodePullForm = (values: FormValues): Decoded<PullPayload> => {
  const kernel = given(values, "kernel")
  const initrd = given(values, "initrd")
  return decodeWith(PullPayload)(
    withoutUndefined({
      reference: given(values, "reference") ?? "",
      name: given(values, "name"),
      size: given(values, "size"),
      platform: given(values, "platform"),
      kernel:
        kernel === undefined
          ? undefined
          : kernel.startsWith("/")
            ? withoutUndefined({ _tag: "Paths", kernel, initrd })
            : { _tag: "Stored", name: kernel }
    })
  )
}

/** The VM create form → `vm.create`'s payload (memory in MiB, disk size as the CLI takes it, accel as --accel). */
export const decodeVmCreateForm = (values: FormValues): Decoded<VmCreatePayload> =>
  decodeWith(VmCreatePayload)(
    withoutUndefined({
      name: given(values, "name") ?? "",
      image: given(values, "image"),
      cpus: numeric(values, "cpus"),
      memoryMib: numeric(values, "memoryMib"),
      diskSize: given(values, "diskSize"),
      accel: given(values, "accel"),
      start: true,
      // A checkbox: sent only when ticked.
      network: given(values, "noNetwork") === undefined ? undefined : false
    })
  )

/** Which field a handler's typed error is about, by its tag; the rest are shown above the form. */
export type ErrorFields = Readonly<Record<string, string>>

export const pullErrorFields: ErrorFields = {
  InvalidReference: "reference",
  CatalogEntryNotFound: "reference",
  InvalidName: "name",
  ImageNameTaken: "name",
  InvalidSize: "size",
  InvalidPlatform: "platform",
  KernelMissing: "kernel",
  KernelNotFound: "kernel",
  InvalidKernelInput: "kernel",
  NotAKernel: "kernel"
}

export const vmCreateErrorFields: ErrorFields = {
  InvalidName: "name",
  VmNameTaken: "name",
  ImageNotFound: "image",
  CatalogEntryNotFound: "image",
  InvalidSize: "diskSize"
}

export const errorFields = (
  error: { readonly _tag: string; readonly message: string },
  fields: ErrorFields
): FieldErrors => ({
  [fields[error._tag] ?? "form"]: error.message
})
