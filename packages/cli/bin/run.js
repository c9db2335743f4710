#!/usr/bin/env node
// Entry of the `runctl` binary. Errors raised before a command runs (unknown
// command, bad topic) also get runctl's envelope and exit codes. The error
// module pulls in @runctl/core, so it is loaded only when something failed:
// `runctl --version` and `--help` stay light.
import { flush, run } from "@oclif/core";

try {
  await run(process.argv.slice(2), import.meta.url);
  await flush();
} catch (error) {
  const { reportFatal } = await import("../dist/fatal.js");
  await reportFatal(error, process.argv.slice(2));
}
