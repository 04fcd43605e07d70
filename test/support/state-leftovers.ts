/** What a pull may have left in a state dir, beyond published images and the database. */
import * as fs from "node:fs"
import * as path from "node:path"
import Database from "better-sqlite3"

const list = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [])

export interface Leftovers {
  readonly staging: ReadonlyArray<string>
  /** Image dirs with no row. */
  readonly orphans: ReadonlyArray<string>
  readonly tmp: ReadonlyArray<string>
  readonly blobTmp: ReadonlyArray<string>
}

export const imageRows = (stateDir: string): Array<{ id: string; name: string }> => {
  const file = path.join(stateDir, "banger.db")
  if (!fs.existsSync(file)) return []
  const db = new Database(file, { readonly: true })
  try {
    // A banger that is still starting may not have migrated yet.
    const migrated = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'images'").get()
    if (!migrated) return []
    return db.prepare("SELECT id, name FROM images ORDER BY name").all() as Array<{ id: string; name: string }>
  } finally {
    db.close()
  }
}

export const leftovers = (stateDir: string): Leftovers => {
  const ids = new Set(imageRows(stateDir).map((row) => row.id))
  const images = list(path.join(stateDir, "images"))
  return {
    staging: images.filter((name) => name.endsWith(".staging")),
    orphans: images.filter((name) => !name.endsWith(".staging") && !ids.has(name)),
    tmp: list(path.join(stateDir, "tmp")),
    blobTmp: list(path.join(stateDir, "cache", "blobs", ".tmp"))
  }
}

export const nothingLeft: Leftovers = { staging: [], orphans: [], tmp: [], blobTmp: [] }
