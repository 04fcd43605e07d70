import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import type { Kernel } from "../domain/image.js"
import { deleteKernel, listKernels, registerKernel, showKernel } from "../pipelines/kernel/manage-kernels.js"
import { details, printJson, table } from "./output.js"

const kernelFields = (kernel: Kernel) =>
  [
    ["name", kernel.name],
    ["kernel", kernel.kernel],
    ["initrd", kernel.initrd],
    ["modules", kernel.modules],
    ["created", kernel.createdAt]
  ] as const

export const makeKernelCommand = (json: Options.Options<boolean>) => {
  const register = Command.make(
    "register",
    {
      name: Args.text({ name: "NAME" }),
      kernel: Options.file("kernel", { exists: "either" }).pipe(Options.withDescription("kernel image")),
      initrd: Options.file("initrd", { exists: "either" }).pipe(Options.optional),
      modules: Options.directory("modules", { exists: "either" }).pipe(Options.optional),
      json
    },
    (options) =>
      Effect.gen(function* () {
        const kernel = yield* registerKernel(options.name, {
          kernel: options.kernel,
          initrd: Option.getOrUndefined(options.initrd),
          modules: Option.getOrUndefined(options.modules)
        })
        if (options.json) return yield* printJson(kernel)
        yield* Console.log(`registered kernel ${kernel.name}`)
      })
  ).pipe(Command.withDescription("copy a kernel (and initrd, modules) into the local kernel store"))

  const list = Command.make("list", { json }, (options) =>
    Effect.gen(function* () {
      const kernels = yield* listKernels
      if (options.json) return yield* printJson(kernels)
      yield* Console.log(
        table(
          ["NAME", "INITRD", "MODULES", "CREATED"],
          kernels.map((kernel) => [
            kernel.name,
            kernel.initrd ? "yes" : "no",
            kernel.modules ? "yes" : "no",
            kernel.createdAt
          ])
        )
      )
    })
  ).pipe(Command.withDescription("list registered kernels"))

  const show = Command.make("show", { name: Args.text({ name: "NAME" }), json }, (options) =>
    Effect.gen(function* () {
      const kernel = yield* showKernel(options.name)
      if (options.json) return yield* printJson(kernel)
      yield* details(kernelFields(kernel))
    })
  ).pipe(Command.withDescription("show a registered kernel"))

  const remove = Command.make("delete", { name: Args.text({ name: "NAME" }), json }, (options) =>
    Effect.gen(function* () {
      const kernel = yield* deleteKernel(options.name)
      if (options.json) return yield* printJson({ deleted: kernel.name })
      yield* Console.log(`deleted kernel ${kernel.name}`)
    })
  ).pipe(Command.withDescription("delete a registered kernel"))

  return Command.make("kernel").pipe(
    Command.withDescription("manage the local kernel store"),
    Command.withSubcommands([register, list, show, remove])
  )
}
