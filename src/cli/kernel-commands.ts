import * as path from "node:path"
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import type { Kernel } from "../domain/image.js"
import { BangerClient } from "../rpc/client.js"
import { absolutePath, kernelPullViaDaemon, printDetached, viaDaemon } from "./daemon-client.js"
import { withDaemon } from "./op-commands.js"
import { details, printJson, table } from "./output.js"
import { detachOption, requestedCatalog, rootCommand } from "./root-command.js"

const kernelFields = (kernel: Kernel) =>
  [
    ["name", kernel.name],
    ["kernel", kernel.kernel],
    ["initrd", kernel.initrd],
    ["modules", kernel.modules],
    ["ref", kernel.ref],
    ["manifest digest", kernel.manifestDigest],
    ["version", kernel.version],
    ["format", kernel.format],
    ["created", kernel.createdAt]
  ] as const

export const makeKernelCommand = (json: Options.Options<boolean>) => {
  const register = Command.make(
    "register",
    {
      name: Args.text({ name: "NAME" }),
      // Text, not Options.file: its existence check runs as this user and dies on a directory the
      // user cannot search; the daemon checks every path, with this user's rights.
      kernel: Options.text("kernel").pipe(Options.withDescription("kernel image file")),
      initrd: Options.text("initrd").pipe(Options.withDescription("initrd file"), Options.optional),
      modules: Options.text("modules").pipe(Options.withDescription("kernel modules directory"), Options.optional),
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
            ["NAME", "FORMAT", "VERSION", "INITRD", "MODULES", "CREATED"],
            kernels.map((kernel) => [
              kernel.name,
              kernel.format ?? "-",
              kernel.version ?? "-",
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

  const remove = Command.make(
    "delete",
    {
      name: Args.text({ name: "NAME" }),
      force: Options.boolean("force").pipe(
        Options.withDescription("delete even if images were made with it (they keep their own copies)")
      ),
      json
    },
    (options) =>
      withDaemon(
        Effect.gen(function* () {
          const client = yield* BangerClient
          const kernel = yield* viaDaemon(client.kernel.delete({ name: options.name, force: options.force }))
          if (options.json) return yield* printJson({ deleted: kernel.name })
          yield* Console.log(`deleted kernel ${kernel.name}`)
        })
      )
  ).pipe(Command.withDescription("delete a kernel (refused while images use it, unless --force)"))

  const pull = Command.make(
    "pull",
    {
      reference: Args.text({ name: "REF|CATALOG_NAME" }).pipe(
        Args.withDescription("a kernel image reference, or a catalog kernel's name (see banger catalog list)")
      ),
      name: Options.text("name").pipe(
        Options.withDescription("kernel name (default: the catalog name, else from the reference)"),
        Options.optional
      ),
      platform: Options.text("platform").pipe(
        Options.withDescription("os/arch[/variant], default linux/amd64"),
        Options.optional
      ),
      detach: detachOption,
      json
    },
    (options) =>
      withDaemon(
        Effect.gen(function* () {
          const root = yield* rootCommand
          const outcome = yield* kernelPullViaDaemon(
            {
              reference: options.reference,
              name: Option.getOrUndefined(options.name),
              platform: Option.getOrUndefined(options.platform),
              catalog: requestedCatalog(root.catalog)
            },
            { detach: options.detach }
          )
          if (outcome._tag === "Detached") return yield* printDetached(outcome.operation, options.json)
          const kernel = outcome.kernel
          if (options.json) return yield* printJson(kernel)
          yield* Console.log(
            `pulled kernel ${kernel.name} (${kernel.ref}, ${kernel.format ?? "?"} ${kernel.version ?? ""}) → ${kernel.kernel}`
          )
        })
      )
  ).pipe(Command.withDescription("pull a kernel published as an OCI image (kernel, initrd, modules) into the store"))

  return Command.make("kernel").pipe(
    Command.withDescription("manage the local kernel store"),
    Command.withSubcommands([register, pull, list, show, remove])
  )
}
