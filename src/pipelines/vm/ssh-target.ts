import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { SshUnavailable } from "../../domain/errors.js"
import { hostKeyAlias, SSH_PORT, SshTarget, VM_KNOWN_HOSTS } from "../../domain/ssh.js"
import type { Vm } from "../../domain/vm.js"
import { StatePaths } from "../../layers/state/state-paths.js"
import { findVm } from "./live-state.js"

/** The one place that knows where a VM's address is recorded. */
export const guestAddress = (vm: Vm): string | undefined => vm.network?.guestAddress

/**
 * What `vm ssh`, `vm attach` and `vm show` need to reach a VM. A stopped VM is refused unless
 * `allowStopped` (show prints the command a user can run once it is up).
 */
export const vmSshTarget = Effect.fn("vm.sshTarget")(function* (
  name: string,
  options: { readonly allowStopped?: boolean | undefined } = {}
) {
  const fs = yield* FileSystem.FileSystem
  const paths = yield* StatePaths
  const vm = yield* findVm(name)
  const running = vm.state === "running"
  if (!running && !options.allowStopped) {
    return yield* new SshUnavailable({ name, reason: `it is ${vm.state} (start it with: banger vm start ${name})` })
  }
  const address = guestAddress(vm)
  if (address === undefined) return yield* new SshUnavailable({ name, reason: "it has no network address" })
  const knownHostsFile = path.join(vm.dir, VM_KNOWN_HOSTS)
  if (!(yield* fs.exists(knownHostsFile).pipe(Effect.orElseSucceed(() => false)))) {
    return yield* new SshUnavailable({ name, reason: "banger did not set up ssh for it (no host key on record)" })
  }
  return new SshTarget({
    name,
    address,
    port: SSH_PORT,
    identityFile: paths.sshClientKey,
    knownHostsFile,
    hostKeyAlias: hostKeyAlias(vm.id),
    running
  })
})
