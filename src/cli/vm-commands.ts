import { Args, Command, Options } from "@effect/cli"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import { Console, Effect, Option, Stream } from "effect"
import { OperationFailed } from "../domain/errors.js"
import { Vm } from "../domain/vm.js"
import { sshCommandLine } from "../layers/ssh/ssh-argv.js"
import { BangerClient } from "../rpc/client.js"
import type { OperationStatus } from "../rpc/schemas.js"
import { printDetached, runOperation, viaDaemon, viaDaemonStream } from "./daemon-client.js"
import { withDaemon } from "./op-commands.js"
import { details, formatBytes, printJson, table } from "./output.js"
import { detachOption, requestedCatalog, rootCommand } from "./root-command.js"
import { makeAttachCommand, makeSshCommand, readSshKeys, sshKeyOption } from "./vm-ssh-commands.js"

const vmFields = (vm: Vm) =>
  [
    ["name", vm.name],
    ["id", vm.id],
    ["state", vm.state],
    ["image", vm.image],
    ["vmm", `${vm.vmm} (${vm.vmmReason})`],
    ["accel", vm.runningAccel === null ? vm.accel : `${vm.runningAccel} (${vm.accelReason ?? vm.accel})`],
    ["kernel format", vm.kernelFormat],
    ["init", vm.init ?? "the image's own"],
    [
      "address",
      vm.network === null
        ? "none (made with --no-network)"
        : `${vm.network.guestAddress} (gateway ${vm.network.hostAddress} on tap ${vm.network.tap}, mac ${vm.network.mac})`
    ],
    ["cpus", vm.cpus],
    ["memory", `${vm.memoryMib} MiB`],
    ["disk", `${formatBytes(vm.diskBytes)} (${vm.dir}/disk.ext4)`],
    ["pid", vm.pid],
    ["last exit", vm.lastExit],
    ["created", vm.createdAt],
    ["started", vm.startedAt],
    ["stopped", vm.stoppedAt]
  ] as const

const name = Args.text({ name: "NAME" })
const force = (what: string) => Options.boolean("force").pipe(Options.withDescription(what))

/** A VM operation (create, start, restart) followed to its end; a finished one answers its VM. */
const vmOperation = <E>(
  begin: Effect.Effect<OperationStatus, E | RpcClientError, BangerClient>,
  options: { readonly detach: boolean; readonly json: boolean }
) =>
  Effect.gen(function* () {
    const outcome = yield* runOperation(begin, { detach: options.detach })
    if (outcome._tag === "Detached") return yield* printDetached(outcome.operation, options.json)
    if (!(outcome.result instanceof Vm)) {
      return yield* new OperationFailed({ id: "-", reason: "the operation did not answer a VM" })
    }
    const vm = outcome.result
    if (options.json) return yield* printJson(vm)
    yield* Console.log(`${vm.name} ${vm.state} (${vm.vmm}${vm.runningAccel ? `, ${vm.runningAccel}` : ""})`)
  })

export const makeVmCommand = (json: Options.Options<boolean>) => {
  const create = Command.make(
    "create",
    {
      name,
      image: Options.text("image").pipe(
        Options.withDescription("a local image, else a catalog image (pulled on first use); default the catalog's"),
        Options.optional
      ),
      cpus: Options.integer("cpus").pipe(Options.withDescription("virtual CPUs (default 2)"), Options.optional),
      memory: Options.integer("memory").pipe(Options.withDescription("memory in MiB (default 1024)"), Options.optional),
      diskSize: Options.text("disk-size").pipe(
        Options.withDescription("work disk size, e.g. 8G (default), 20G, 512M"),
        Options.optional
      ),
      vmm: Options.choice("vmm", ["firecracker", "qemu"]).pipe(
        Options.withDescription("hypervisor (default firecracker where it can boot the kernel, else qemu)"),
        Options.optional
      ),
      accel: Options.choice("accel", ["kvm", "tcg", "auto"]).pipe(
        Options.withDescription("qemu acceleration (default auto: kvm where guests run on it)"),
        Options.optional
      ),
      noStart: Options.boolean("no-start").pipe(Options.withDescription("make the VM but do not boot it")),
      sshKey: sshKeyOption,
      noNetwork: Options.boolean("no-network").pipe(
        Options.withDescription("no tap, address or outbound access (a daemon without CAP_NET_ADMIN needs this)")
      ),
      detach: detachOption,
      json
    },
    (options) =>
      withDaemon(
        Effect.gen(function* () {
          const root = yield* rootCommand
          const sshKeys = yield* readSshKeys(options.sshKey)
          const client = yield* BangerClient
          yield* vmOperation(
            client.vm.create({
              name: options.name,
              image: Option.getOrUndefined(options.image),
              cpus: Option.getOrUndefined(options.cpus),
              memoryMib: Option.getOrUndefined(options.memory),
              diskSize: Option.getOrUndefined(options.diskSize),
              vmm: Option.getOrUndefined(options.vmm),
              accel: Option.getOrUndefined(options.accel),
              start: !options.noStart,
              catalog: requestedCatalog(root.catalog),
              sshKeys,
              network: options.noNetwork ? false : undefined
            }),
            options
          )
        })
      )
  ).pipe(Command.withDescription("make a VM from an image and boot it; returns when the guest is ready"))

  const start = Command.make("start", { name, detach: detachOption, json }, (options) =>
    withDaemon(Effect.flatMap(BangerClient, (client) => vmOperation(client.vm.start({ name: options.name }), options)))
  ).pipe(Command.withDescription("boot a stopped VM; returns when the guest is ready"))

  const restart = Command.make("restart", { name, detach: detachOption, json }, (options) =>
    withDaemon(
      Effect.flatMap(BangerClient, (client) => vmOperation(client.vm.restart({ name: options.name }), options))
    )
  ).pipe(Command.withDescription("stop a VM, then boot it again"))

  const stop = Command.make(
    "stop",
    { name, force: force("signal the VMM at once instead of asking the guest to power off"), json },
    (options) =>
      withDaemon(
        Effect.gen(function* () {
          const client = yield* BangerClient
          const vm = yield* viaDaemon(client.vm.stop({ name: options.name, force: options.force }))
          if (options.json) return yield* printJson(vm)
          yield* Console.log(`${vm.name} stopped (${vm.lastExit ?? "was not running"})`)
        })
      )
  ).pipe(Command.withDescription("power a VM off: ACPI / Ctrl-Alt-Del, then signals after a grace period"))

  const remove = Command.make(
    "delete",
    { name, force: force("stop a running VM first (its disk is discarded anyway)"), json },
    (options) =>
      withDaemon(
        Effect.gen(function* () {
          const client = yield* BangerClient
          const vm = yield* viaDaemon(client.vm.delete({ name: options.name, force: options.force }))
          if (options.json) return yield* printJson({ deleted: vm.name })
          yield* Console.log(`deleted VM ${vm.name}`)
        })
      )
  ).pipe(Command.withDescription("delete a VM with its disk and logs"))

  const list = Command.make("list", { json }, (options) =>
    withDaemon(
      Effect.gen(function* () {
        const client = yield* BangerClient
        const vms = yield* viaDaemon(client.vm.list())
        if (options.json) return yield* printJson(vms)
        yield* Console.log(
          table(
            ["NAME", "STATE", "ADDRESS", "IMAGE", "VMM", "CPUS", "MEMORY", "DISK"],
            vms.map((vm) => [
              vm.name,
              vm.state,
              vm.network?.guestAddress ?? "-",
              vm.image,
              vm.runningAccel ? `${vm.vmm}/${vm.runningAccel}` : vm.vmm,
              String(vm.cpus),
              `${vm.memoryMib} MiB`,
              formatBytes(vm.diskBytes)
            ])
          )
        )
      })
    )
  ).pipe(Command.withDescription("list VMs with their real state"))

  const show = Command.make("show", { name, json }, (options) =>
    withDaemon(
      Effect.gen(function* () {
        const client = yield* BangerClient
        const vm = yield* viaDaemon(client.vm.show({ name: options.name }))
        if (options.json) return yield* printJson(vm)
        // A VM without an address or ssh set up is shown all the same, without the ssh line's value.
        const target = yield* Effect.option(client.vm.sshTarget({ name: options.name, allowStopped: true }))
        yield* details([...vmFields(vm), ["ssh", Option.getOrNull(Option.map(target, (ssh) => sshCommandLine(ssh)))]])
      })
    )
  ).pipe(Command.withDescription("show a VM: state, VMM and why, sizes, process, address and its ssh command"))

  const logs = Command.make(
    "logs",
    {
      name,
      follow: Options.boolean("follow").pipe(Options.withAlias("f"), Options.withDescription("keep printing"))
    },
    (options) =>
      withDaemon(
        Effect.flatMap(BangerClient, (client) =>
          viaDaemonStream(client.vm.logs({ name: options.name, follow: options.follow })).pipe(
            Stream.runForEach((chunk) => Effect.sync(() => process.stdout.write(chunk)))
          )
        )
      )
  ).pipe(Command.withDescription("print a VM's console log (every boot); -f follows it"))

  return Command.make("vm").pipe(
    Command.withDescription("create, run and manage VMs"),
    Command.withSubcommands([
      create,
      start,
      stop,
      restart,
      remove,
      list,
      show,
      logs,
      makeSshCommand(),
      makeAttachCommand()
    ])
  )
}
