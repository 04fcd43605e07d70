import { Context, Effect, Layer, Option } from "effect"
import { ImageBusy, ImageNameTaken } from "../domain/errors.js"

export interface NameReservationsShape {
  /** Claims `name` for operation `owner` alone, or fails naming the operation that holds it. */
  readonly reserve: (name: string, owner: string) => Effect.Effect<void, ImageNameTaken>
  readonly release: (name: string) => Effect.Effect<void>
  /**
   * Claims `name` for operation `owner` alongside other sharers (VM creates reading one image), or
   * fails while an operation holds it alone. Undone by `unshare` with the same owner.
   */
  readonly share: (name: string, owner: string) => Effect.Effect<void, ImageBusy>
  readonly unshare: (name: string, owner: string) => Effect.Effect<void>
  /** The operation holding `name`, alone or as one of its sharers, if one does. */
  readonly holder: (name: string) => Effect.Effect<Option.Option<string>>
}

/**
 * Image names claimed by running operations (pull, register, promote, delete alone; VM creates
 * shared). A second pull of a name already being pulled fails at once with ImageNameTaken instead
 * of downloading everything to lose at publish; promote and delete refuse an image another
 * operation holds, so an image cannot go while a VM is being made from it.
 */
export class NameReservations extends Context.Tag("banger/NameReservations")<
  NameReservations,
  NameReservationsShape
>() {
  static readonly layer = Layer.sync(NameReservations, () => {
    const held = new Map<string, string>()
    const shared = new Map<string, Set<string>>()
    const firstSharer = (name: string) => shared.get(name)?.values().next().value
    // Each check and claim is one synchronous step: nothing can interleave between them.
    return {
      reserve: (name, owner) =>
        Effect.suspend(() => {
          const holder = held.get(name)
          if (holder !== undefined) {
            return Effect.fail(
              new ImageNameTaken({ name, reason: `a pull of this name is already running (operation ${holder})` })
            )
          }
          const sharer = firstSharer(name)
          if (sharer !== undefined) {
            return Effect.fail(
              new ImageNameTaken({ name, reason: `a VM is being created from this image (operation ${sharer})` })
            )
          }
          held.set(name, owner)
          return Effect.void
        }),
      release: (name) => Effect.sync(() => void held.delete(name)),
      share: (name, owner) =>
        Effect.suspend(() => {
          const holder = held.get(name)
          if (holder !== undefined) {
            return Effect.fail(new ImageBusy({ name, operation: holder, reason: "another operation is working on it" }))
          }
          const owners = shared.get(name) ?? new Set<string>()
          shared.set(name, owners.add(owner))
          return Effect.void
        }),
      unshare: (name, owner) =>
        Effect.sync(() => {
          const owners = shared.get(name)
          owners?.delete(owner)
          if (owners?.size === 0) shared.delete(name)
        }),
      holder: (name) => Effect.sync(() => Option.fromNullable(held.get(name) ?? firstSharer(name)))
    }
  })
}
