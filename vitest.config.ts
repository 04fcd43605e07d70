import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/build-once.ts"],
    testTimeout: 120_000,
    hookTimeout: 600_000,
    // Integration suites start registries, mkfs and qemu: two cores do not gain from more workers.
    maxWorkers: 2,
    minWorkers: 1
  }
})
