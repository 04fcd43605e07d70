import { Context, Effect, Layer, Option } from "effect"
import { ImageNameTaken } from "../domain/errors.js"

export interface NameReservationsShape {
  /** Claims `name` for operation `owner`, or fails naming the operation that holds it. */
  readonly reserve: (name: string, owner: string) => Effect.Effect<void, ImageNameTaken>
  readonly release: (name: string) => Effect.Effect<void>
  /** The operation holding `name`, if one does. */
  readonly holder: (name: string) => Effect.Effect<Option.Option<string>>
}

/**
 * Image names claimed by running operations (pull, register, promote). A second pull of a name
 * already being pulled fails at once with ImageNameTaken instead of downloading everything to lose
 * at publish; promote and delete refuse an image another operation holds.
 */
export class NameReservations extends Context.Tag("banger/NameReservations")<
  NameReservations,
  NameReservationsShape
>() {
  static readonly layer = Layer.sync(NameReservations, () => {
    const held = new Map<string, string>()
    return {
      // Check and claim in one synchronous step: nothing can interleave between them.
      reserve: (name, owner) =>
        Effect.suspend(() => {
          const holder = held.get(name)
          if (holder !== undefined) {
            return Effect.fail(
              new ImageNameTaken({ name, reason: `a pull of this name is already running (operation ${holder})` })
            )
          }
          held.set(name, owner)
          return Effect.void
        }),
      release: (name) => Effect.sync(() => void held.delete(name)),
      holder: (name) => Effect.sync(() => Option.fromNullable(held.get(name)))
    }
  })
}
