import { defineConfig } from "vitest/config";

// End-to-end tests start real servers (verdaccio, nats-server, emulators) and run npm and
// training scripts, so minutes, not the default five seconds; child processes and servers behave
// best in real processes, not worker threads.
//
// Two files run at a time: most of a file's time is spent waiting on child processes (npm, a
// booting bare host, a training run), so a second file fills the gaps. Every file takes its own
// ports, directories and servers, so files never share state. (Vitest puts every file of every
// project with fileParallelism off into one queue with one worker, so parallelism is per file,
// not per project.)
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    include: ["test/**/*.test.ts"],
    fileParallelism: true,
    maxWorkers: 2,
  },
});
