import * as path from "node:path"
import { Args, Command, Options } from "@effect/cli"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import { Console, Effect, Option } from "effect"
import { InvalidKernelInput, OperationFailed } from "../domain/errors.js"
import { Image } from "../domain/image.js"
import type { KernelSource } from "../pipelines/pull/resolve-kernel.js"
import { BangerClient } from "../rpc/client.js"
import type { OperationStatus } from "../rpc/schemas.js"
import { absolutePath, printDetached, pullViaDaemon, runOperation, viaDaemon } from "./daemon-client.js"
import { withDaemon } from "./op-commands.js"
import { details, formatBytes, printJson, table } from "./output.js"
import { detachOption, requestedCatalog, rootCommand } from "./root-command.js"

const imageFields = (image: Image) =>
  [
    ["name", image.name],
    ["id", image.id],
    ["ref", image.ref],
    ["manifest digest", image.manifestDigest],
    ["platform", image.platform],
    ["managed", image.managed],
    ["rootfs", image.rootfs],
    ["kernel", image.kernel],
    ["initrd", image.initrd],
    ["modules", image.modules],
    ["kernel name", image.kernelName],
    ["size", `${formatBytes(image.sizeBytes)} (${image.sizeBytes} bytes)`],
    ["created", image.createdAt]
  ] as const

// Text, not Options.file: its existence check runs as this user and dies on a directory the user
// cannot search; the daemon checks every path, with this user's rights.
const kernelOptions = {
  kernel: Options.text("kernel").pipe(Options.withDescription("kernel image to boot"), Options.optional),
  initrd: Options.text("initrd").pipe(Options.withDescription("initrd"), Options.optional),
  modules: Options.text("modules").pipe(Options.withDescription("kernel modules directory"), Options.optional),
  kernelRef: Options.text("kernel-ref").pipe(
    Options.withDescription("a kernel in the local store, else a catalog kernel (pulled on first use)"),
    Options.optional
  )
}

/** `--kernel …` or `--kernel-ref …` → KernelSource; both, or initrd/modules without kernel, is a usage error. */
const kernelSource = (options: {
  kernel: Option.Option<string>
  initrd: Option.Option<string>
  modules: Option.Option<string>
  kernelRef: Option.Option<string>
}): Effect.Effect<KernelSource | undefined, InvalidKernelInput> => {
  if (Option.isSome(options.kernelRef)) {
    if (Option.isSome(options.kernel) || Option.isSome(options.initrd) || Option.isSome(options.modules)) {
      return Effect.fail(
        new InvalidKernelInput({
          path: options.kernelRef.value,
          reason: "use either --kernel-ref or --kernel/--initrd/--modules, not both"
        })
      )
    }
    return Effect.succeed({ _tag: "Stored", name: options.kernelRef.value })
  }
  if (Option.isNone(options.kernel)) {
    const stray = Option.orElse(options.initrd, () => options.modules)
    return Option.isSome(stray)
      ? Effect.fail(new InvalidKernelInput({ path: stray.value, reason: "--initrd and --modules need --kernel" }))
      : Effect.succeed(undefined)
  }
  return Effect.succeed({
    _tag: "Paths",
    kernel: path.resolve(options.kernel.value),
    initrd: absolutePath(options.initrd),
    modules: absolutePath(options.modules)
  })
}

/** An image operation (register, promote) through the daemon; a finished one answers its image. */
const imageOperation = <E, R>(
  begin: Effect.Effect<OperationStatus, E | RpcClientError, R>,
  options: { readonly detach: boolean }
) =>
  Effect.gen(function* () {
    const outcome = yield* runOperation(begin, options)
    if (outcome._tag === "Detached") return outcome
    if (!(outcome.result instanceof Image)) {
      return yield* new OperationFailed({ id: "-", reason: "the operation did not answer an image" })
    }
    return { _tag: "Finished", image: outcome.result } as const
  })

export const makeImageCommand = (json: Options.Options<boolean>) => {
  const pull = Command.make(
    "pull",
    {
      reference: Args.text({ name: "REF|CATALOG_NAME" }).pipe(
        Args.withDescription(
          "image reference (debian:bookworm), or a catalog image's exact name (pulled with its kernel)"
        )
      ),
      name: Options.text("name").pipe(
        Options.withDescription("image name (default: from the reference)"),
        Options.optional
      ),
      size: Options.text("size").pipe(Options.withDescription("rootfs size: 2G, 1500M or bytes"), Options.optional),
      platform: Options.text("platform").pipe(
        Options.withDescription("os/arch[/variant], default linux/amd64"),
        Options.optional
      ),
      ...kernelOptions,
      detach: detachOption,
      json
    },
    (options) =>
      withDaemon(
        Effect.gen(function* () {
          const kernel = yield* kernelSource(options)
          const root = yield* rootCommand
          const outcome = yield* pullViaDaemon(
            {
              reference: options.reference,
              name: Option.getOrUndefined(options.name),
              size: Option.getOrUndefined(options.size),
              platform: Option.getOrUndefined(options.platform),
              kernel,
              catalog: requestedCatalog(root.catalog)
            },
            { detach: options.detach }
          )
          if (outcome._tag === "Detached") return yield* printDetached(outcome.operation, options.json)
          const image = outcome.image
          if (options.json) yield* printJson(image)
          else yield* Console.log(`pulled ${image.name} (${image.ref}) → ${image.rootfs}`)
        })
      )
  ).pipe(Command.withDescription("pull an OCI image and build a bootable ext4 rootfs from it"))

  const list = Command.make("list", { json }, (options) =>
    withDaemon(
      Effect.gen(function* () {
        const client = yield* BangerClient
        const images = yield* viaDaemon(client.image.list())
        if (options.json) return yield* printJson(images)
        yield* Console.log(
          table(
            ["NAME", "REF", "PLATFORM", "SIZE", "CREATED"],
            images.map((image) => [
              image.name,
              image.ref ?? "-",
              image.platform ?? "-",
              formatBytes(image.sizeBytes),
              image.createdAt
            ])
          )
        )
      })
    )
  ).pipe(Command.withDescription("list images"))

  const show = Command.make("show", { name: Args.text({ name: "NAME" }), json }, (options) =>
    withDaemon(
      Effect.gen(function* () {
        const client = yield* BangerClient
        const image = yield* viaDaemon(client.image.show({ name: options.name }))
        if (options.json) return yield* printJson(image)
        yield* details(imageFields(image))
      })
    )
  ).pipe(Command.withDescription("show an image's record and artifact paths"))

  const remove = Command.make("delete", { name: Args.text({ name: "NAME" }), json }, (options) =>
    withDaemon(
      Effect.gen(function* () {
        const client = yield* BangerClient
        const image = yield* viaDaemon(client.image.delete({ name: options.name }))
        if (options.json) return yield* printJson({ deleted: image.name })
        yield* Console.log(`deleted ${image.name}`)
      })
    )
  ).pipe(
    Command.withDescription("delete an image: a managed one with its files, a registered one leaving its files alone")
  )

  const register = Command.make(
    "register",
    {
      name: Args.text({ name: "NAME" }),
      // Text, not Options.file: the daemon checks the path, so every refusal reads the same.
      rootfs: Options.text("rootfs").pipe(Options.withDescription("ext4 root filesystem image; it stays where it is")),
      ...kernelOptions,
      json
    },
    (options) =>
      withDaemon(
        Effect.gen(function* () {
          const root = yield* rootCommand
          const client = yield* BangerClient
          const kernel = yield* kernelSource(options)
          const outcome = yield* imageOperation(
            client.image.register({
              name: options.name,
              rootfs: path.resolve(options.rootfs),
              kernel,
              catalog: requestedCatalog(root.catalog)
            }),
            { detach: false }
          )
          if (outcome._tag === "Detached") return yield* printDetached(outcome.operation, options.json)
          if (options.json) return yield* printJson(outcome.image)
          yield* Console.log(`registered ${outcome.image.name} (unmanaged) → ${outcome.image.rootfs}`)
        })
      )
  ).pipe(Command.withDescription("record an existing ext4 rootfs as an image, leaving its files where they are"))

  const promote = Command.make(
    "promote",
    {
      name: Args.text({ name: "NAME" }),
      detach: detachOption,
      json
    },
    (options) =>
      withDaemon(
        Effect.gen(function* () {
          const client = yield* BangerClient
          const outcome = yield* imageOperation(client.image.promote({ name: options.name }), {
            detach: options.detach
          })
          if (outcome._tag === "Detached") return yield* printDetached(outcome.operation, options.json)
          if (options.json) return yield* printJson(outcome.image)
          yield* Console.log(`promoted ${outcome.image.name} → ${outcome.image.rootfs}`)
        })
      )
  ).pipe(Command.withDescription("copy a registered image's files into the store and manage them from now on"))

  return Command.make("image").pipe(
    Command.withDescription("manage images"),
    Command.withSubcommands([pull, list, show, remove, register, promote])
  )
}
