import { Schema } from "effect"

/**
 * A VM's place on banger's network: one /30 out of the daemon's pool, the host side on the VM's
 * tap and the guest side on the guest's eth0. Recorded with the VM and kept across stop/start, so
 * its address (and so `vm ssh`) stays the same for the VM's whole life; freed when it is deleted.
 */
export class VmNetwork extends Schema.Class<VmNetwork>("VmNetwork")({
  /** `bg` + part of the VM id, at most 15 characters (IFNAMSIZ - 1): anything named bg* is banger's. */
  tap: Schema.String,
  /** Stable per VM, locally administered unicast (`02:…`). */
  mac: Schema.String,
  /** The tap's address: the guest's gateway. */
  hostAddress: Schema.String,
  /** eth0's address in the guest: what `vm ssh` connects to. */
  guestAddress: Schema.String,
  /** Of the /30 (or /31) both addresses belong to. */
  prefixLength: Schema.Int
}) {}
