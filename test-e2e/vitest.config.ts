import { defineConfig } from "vitest/config";

// End-to-end tests start real servers (verdaccio, nats-server, emulators) and run npm and
// training scripts, so minutes, not the default five seconds; child processes and servers behave
// best in real processes, not worker threads.
const shared = { testTimeout: 120_000, hookTimeout: 120_000, pool: "forks" as const };

// The installation test (publish to verdaccio, npm install, run the installed CLI) is a third of
// the suite's time and mostly waits on npm: it runs beside the others, which run one file at a
// time (they compete for ports, CPU and the training scripts' ranks otherwise). Projects run in
// parallel with each other, so at most two files run at once.
const INSTALL = "test/install.test.ts";

export default defineConfig({
  test: {
    projects: [
      { test: { ...shared, name: "install", include: [INSTALL], fileParallelism: false } },
      {
        test: {
          ...shared,
          name: "e2e",
          include: ["test/**/*.test.ts"],
          exclude: [INSTALL],
          fileParallelism: false,
        },
      },
    ],
  },
});
