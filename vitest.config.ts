import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "emulator/test/**/*.test.ts"],
    globalSetup: ["test/helpers/global-setup.ts"],
    // Every file fails if it leaves handles, child processes, temp files, Redis keys or databases.
    setupFiles: ["test/helpers/leak-check.ts"],
    // Files run in parallel (each has its own database and Redis prefix); integration tests talk
    // to real services and child processes, so give them room on a 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
  },
});
