import { spawn } from "node:child_process"
import * as fs from "node:fs"
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import { FilesystemError, SshUnavailable } from "../domain/errors.js"
import type { SshKeyFile, SshTarget } from "../domain/ssh.js"
import { ATTACH_COMMAND, type SshInvocation, sshArgv } from "../layers/ssh/ssh-argv.js"
import { BangerClient } from "../rpc/client.js"
import { absolutePath, viaDaemon } from "./daemon-client.js"
import { ExitCode } from "./exit-code.js"
import { withDaemon } from "./op-commands.js"

/** `--ssh-key FILE` (repeatable): read here, as the user who gave them; the daemon checks them. */
// Text: readSshKeys says in one line why a file cannot be read (Options.file's check dies on EACCES).
export const sshKeyOption = Options.text("ssh-key").pipe(
  Options.withDescription("a public key file that may also log in as root (repeatable)"),
  Options.repeated
)

export const readSshKeys = (files: ReadonlyArray<string>) =>
  Effect.forEach(files, (file) => {
    const absolute = absolutePath(Option.some(file))!
    return Effect.try({
      try: (): SshKeyFile => ({ path: absolute, content: fs.readFileSync(absolute, "utf8") }),
      catch: (error) => new FilesystemError({ path: absolute, reason: String((error as Error).message ?? error) })
    })
  })

/** Asks the daemon where the VM is, then lets go of it: the session may outlive the daemon. */
const sshTarget = (name: string) =>
  withDaemon(Effect.flatMap(BangerClient, (client) => viaDaemon(client.vm.sshTarget({ name }))))

/** 128 + the signal's number, as a shell reports a command killed by a signal. */
const SIGNAL_NUMBERS: Readonly<Record<string, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 }

/**
 * The system ssh with this process's stdin, stdout and stderr, ending banger with ssh's exit
 * status (255 is ssh's own failure: it has printed why).
 */
const runSsh = (target: SshTarget, invocation: SshInvocation) =>
  Effect.gen(function* () {
    const unavailable = (reason: string) => new SshUnavailable({ name: target.name, reason })
    yield* Effect.try({
      try: () => fs.accessSync(target.identityFile, fs.constants.R_OK),
      catch: () => unavailable(`cannot read banger's key ${target.identityFile} (run this as the daemon's user)`)
    })
    const code = yield* Effect.async<number, SshUnavailable>((resume) => {
      const child = spawn("ssh", sshArgv(target, invocation), { stdio: "inherit" })
      child.once("error", (error: NodeJS.ErrnoException) =>
        resume(
          Effect.fail(
            unavailable(
              error.code === "ENOENT" ? "ssh is not installed (apt-get install openssh-client)" : error.message
            )
          )
        )
      )
      child.once("exit", (status, signal) =>
        resume(Effect.succeed(status ?? 128 + (SIGNAL_NUMBERS[signal ?? ""] ?? 1)))
      )
      return Effect.sync(() => child.kill("SIGTERM"))
    })
    if (code !== 0) return yield* new ExitCode({ code })
  })

const name = Args.text({ name: "NAME" })

export const makeSshCommand = () =>
  Command.make(
    "ssh",
    {
      name,
      user: Options.text("user").pipe(Options.withDescription("log in as this user (default root)"), Options.optional),
      command: Args.text({ name: "CMD" }).pipe(Args.repeated)
    },
    (options) =>
      Effect.flatMap(sshTarget(options.name), (target) =>
        runSsh(target, { user: Option.getOrUndefined(options.user), command: options.command })
      )
  ).pipe(Command.withDescription("ssh into a running VM as root (or --user); after --, a command to run there instead"))

export const makeAttachCommand = () =>
  Command.make("attach", { name }, (options) =>
    Effect.flatMap(sshTarget(options.name), (target) => runSsh(target, { tty: true, command: [ATTACH_COMMAND] }))
  ).pipe(
    Command.withDescription(
      "an interactive shell in a VM: its tmux session 'banger' (made or rejoined) when it has tmux"
    )
  )
