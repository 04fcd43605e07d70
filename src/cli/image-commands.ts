import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { InvalidKernelInput } from "../domain/errors.js"
import type { Image } from "../domain/image.js"
import { deleteImage, listImages, showImage } from "../pipelines/image/manage-images.js"
import { pullImage } from "../pipelines/pull/pull.js"
import type { KernelSource } from "../pipelines/pull/resolve-kernel.js"
import { details, formatBytes, printJson, table } from "./output.js"
import { stderrPullProgress } from "./pull-progress.js"

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
    ["size", `${formatBytes(image.sizeBytes)} (${image.sizeBytes} bytes)`],
    ["created", image.createdAt]
  ] as const

const kernelOptions = {
  kernel: Options.file("kernel", { exists: "either" }).pipe(
    Options.withDescription("kernel image to boot"),
    Options.optional
  ),
  initrd: Options.file("initrd", { exists: "either" }).pipe(Options.withDescription("initrd"), Options.optional),
  modules: Options.directory("modules", { exists: "either" }).pipe(
    Options.withDescription("kernel modules directory"),
    Options.optional
  ),
  kernelRef: Options.text("kernel-ref").pipe(
    Options.withDescription("a kernel registered with `banger kernel register`"),
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
    kernel: options.kernel.value,
    initrd: Option.getOrUndefined(options.initrd),
    modules: Option.getOrUndefined(options.modules)
  })
}

export const makeImageCommand = (json: Options.Options<boolean>) => {
  const pull = Command.make(
    "pull",
    {
      reference: Args.text({ name: "REF" }).pipe(Args.withDescription("image reference, e.g. debian:bookworm")),
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
      json
    },
    (options) =>
      Effect.gen(function* () {
        const kernel = yield* kernelSource(options)
        const image = yield* pullImage({
          reference: options.reference,
          name: Option.getOrUndefined(options.name),
          size: Option.getOrUndefined(options.size),
          platform: Option.getOrUndefined(options.platform),
          kernel
        }).pipe(Effect.provide(stderrPullProgress))
        if (options.json) yield* printJson(image)
        else yield* Console.log(`pulled ${image.name} (${image.ref}) → ${image.rootfs}`)
      })
  ).pipe(Command.withDescription("pull an OCI image and build a bootable ext4 rootfs from it"))

  const list = Command.make("list", { json }, (options) =>
    Effect.gen(function* () {
      const images = yield* listImages
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
  ).pipe(Command.withDescription("list images"))

  const show = Command.make("show", { name: Args.text({ name: "NAME" }), json }, (options) =>
    Effect.gen(function* () {
      const image = yield* showImage(options.name)
      if (options.json) return yield* printJson(image)
      yield* details(imageFields(image))
    })
  ).pipe(Command.withDescription("show an image's record and artifact paths"))

  const remove = Command.make("delete", { name: Args.text({ name: "NAME" }), json }, (options) =>
    Effect.gen(function* () {
      const image = yield* deleteImage(options.name)
      if (options.json) return yield* printJson({ deleted: image.name })
      yield* Console.log(`deleted ${image.name}`)
    })
  ).pipe(Command.withDescription("delete an image and its artifacts"))

  return Command.make("image").pipe(
    Command.withDescription("manage images"),
    Command.withSubcommands([pull, list, show, remove])
  )
}

export { kernelOptions, kernelSource }
