import { Effect } from "effect"
import { imagePullTarget } from "../pipelines/pull/pull.js"
import type { PullPayload } from "../rpc/schemas.js"

/**
 * The name a pull will publish under, checked: `image.pull` needs it to reserve the name before it
 * begins the operation. The rest of the pre-download checks run after the reservation (handlers).
 */
export const pullTargetName = Effect.fn("pullTargetName")(function* (payload: PullPayload) {
  return (yield* imagePullTarget(payload)).name
})
