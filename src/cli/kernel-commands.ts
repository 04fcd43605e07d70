import * as path from "node:path"
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect } from "effect"
import type { Kernel } from "../domain/image.js"
import { BangerClient } from "../rpc/client.js"
import { absolutePath, viaDaemon } from "./daemon-client.js"
import { withDaemon } from "./op-commands.js"
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
      withDaemon(
        Effect.gen(function* () {
          const client = yield* BangerClient
          const kernel = yield* viaDaemon(
            client.kernel.register({
              name: options.name,
              kernel: path.resolve(options.kernel),
              initrd: absolutePath(options.initrd),
              modules: absolutePath(options.modules)
            })
          )
          if (options.json) return yield* printJson(kernel)
          yield* Console.log(`registered kernel ${kernel.name}`)
        })
      )
  ).pipe(Command.withDescription("copy a kernel (and initrd, modules) into the local kernel store"))

  const list = Command.make("list", { json }, (options) =>
    withDaemon(
      Effect.gen(function* () {
        const client = yield* BangerClient
        const kernels = yield* viaDaemon(client.kernel.list())
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
    )
  ).pipe(Command.withDescription("list registered kernels"))

  const show = Command.make("show", { name: Args.text({ name: "NAME" }), json }, (options) =>
    withDaemon(
      Effect.gen(function* () {
        const client = yield* BangerClient
        const kernel = yield* viaDaemon(client.kernel.show({ name: options.name }))
        if (options.json) return yield* printJson(kernel)
        yield* details(kernelFields(kernel))
      })
    )
  ).pipe(Command.withDescription("show a registered kernel"))

  const remove = Command.make("delete", { name: Args.text({ name: "NAME" }), json }, (options) =>
    withDaemon(
      Effect.gen(function* () {
        const client = yield* BangerClient
        const kernel = yield* viaDaemon(client.kernel.delete({ name: options.name }))
        if (options.json) return yield* printJson({ deleted: kernel.name })
        yield* Console.log(`deleted kernel ${kernel.name}`)
      })
    )
  ).pipe(Command.withDescription("delete a registered kernel"))

  return Command.make("kernel").pipe(
    Command.withDescription("manage the local kernel store"),
    Command.withSubcommands([register, list, show, remove])
  )
}
