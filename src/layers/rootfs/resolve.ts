/**
 * Rooted path resolution over the model, like a chroot: symlinks met on the way are followed
 * inside the tree, absolute targets restart at the rootfs root and `..` stops at it. Nothing here
 * touches the disk, so a symlink to `/` or `../../..` can only ever name a directory of the tree.
 */
import type { NodeId, TreeModel } from "./tree-model.js"

/** Linux's limit (MAXSYMLINKS): deep enough for real images, and it ends loops. */
export const MAX_SYMLINK_HOPS = 40
/** Bounds the work one name can cost: 40 hops through long targets would otherwise add up. */
export const MAX_COMPONENT_STEPS = 16_384

export type Resolved =
  | { readonly _tag: "Directory"; readonly node: NodeId }
  | { readonly _tag: "Missing" }
  | { readonly _tag: "NotDirectory"; readonly path: string }

export interface ResolveOptions {
  readonly model: TreeModel
  readonly components: ReadonlyArray<string>
  /** Supplies a missing directory (creating it), or `undefined` to stop with `Missing`. */
  readonly missing: (parent: NodeId, name: string) => NodeId | undefined
  /** Throws the caller's failure for a name that cannot be resolved. */
  readonly unresolvable: (reason: string) => never
}

/** Synchronous, like the rest of the layer application: failures leave through `unresolvable`. */
export const resolveDirectory = (options: ResolveOptions): Resolved => {
  const { model } = options
  const root = model.root
  // A stack of components still to walk, next one last; symlink targets are pushed onto it.
  const pending = [...options.components].reverse()
  let current = root
  let hops = 0
  let steps = 0
  while (pending.length > 0) {
    if (++steps > MAX_COMPONENT_STEPS) return options.unresolvable("path resolution too long")
    const name = pending.pop()!
    if (name === "" || name === ".") continue
    if (name === "..") {
      current = model.parentOf(current) ?? root
      continue
    }
    const child = model.child(current, name)
    if (child === undefined) {
      const made = options.missing(current, name)
      if (made === undefined) return { _tag: "Missing" } as const
      current = made
      continue
    }
    switch (model.typeOf(child)) {
      case "directory":
        current = child
        break
      case "symlink": {
        if (++hops > MAX_SYMLINK_HOPS) {
          return options.unresolvable("too many levels of symbolic links")
        }
        const target = model.linkTarget(model.inodeOf(child))!
        if (target.startsWith("/")) current = root
        const parts = target.split("/")
        for (let i = parts.length - 1; i >= 0; i--) pending.push(parts[i]!)
        break
      }
      default:
        return { _tag: "NotDirectory", path: model.pathOf(child) } as const
    }
  }
  return { _tag: "Directory", node: current } as const
}
