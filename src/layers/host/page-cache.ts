import { loadAddon } from "./native-addon.js"

interface PageCacheAddon {
  readonly dropCache: (fd: number, callback: (errno: number) => void) => void
}

/**
 * The file's clean pages out of the page cache, on the thread pool (native/page-cache.c); its dirty
 * pages are only sent to the disk. Resolves with 0 or the error number, never rejects: dropping is
 * an optimisation, and without the addon (a build that skipped it) the pages merely stay.
 */
export const dropPageCache = (fd: number): Promise<number> =>
  new Promise((resolve) => {
    try {
      loadAddon<PageCacheAddon>("page-cache", "drops written-back pages from the page cache").dropCache(fd, resolve)
    } catch {
      resolve(-1)
    }
  })
