#!/usr/bin/env node
// Entry of the `runctl` binary.
//
// `runctl --version`, `runctl --help` and a bare `runctl` are answered by the
// fast path from package.json files and oclif manifests, without importing
// @oclif/core (which costs several times a bare Node start). Everything else
// goes to oclif. Errors raised before a command runs (unknown command, bad
// topic) also get runctl's envelope and exit codes; that module pulls in
// @runctl/core, so it is loaded only when something failed.
import module from "node:module";
import { fileURLToPath } from "node:url";
import { fastPath } from "../dist/fast-path.js";

const argv = process.argv.slice(2);
if (!fastPath(argv, fileURLToPath(new URL("..", import.meta.url)))) {
  // Node >= 22.1 keeps compiled code on disk between runs (NODE_COMPILE_CACHE, else the OS temp
  // dir), which makes oclif's start cheaper from the second run on; older Nodes skip this.
  module.enableCompileCache?.();
  const { flush, run } = await import("@oclif/core");
  try {
    await run(argv, import.meta.url);
    await flush();
  } catch (error) {
    const { reportFatal } = await import("../dist/fatal.js");
    await reportFatal(error, argv);
  }
}
