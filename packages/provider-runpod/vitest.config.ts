import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Tests start real processes (Python, torch, the CLI); on a loaded 2-core machine a torch
    // import alone can take seconds. Timeouts catch hangs; they are not performance assertions.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
