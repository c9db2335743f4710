import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // End-to-end tests start real servers (verdaccio, nats-server, emulators) and run npm and
    // training scripts, so minutes, not the default five seconds.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Child processes and servers behave best in real processes, not worker threads.
    pool: "forks",
    // One file at a time: files compete for ports, CPU and the training scripts' ranks otherwise.
    fileParallelism: false,
  },
});
