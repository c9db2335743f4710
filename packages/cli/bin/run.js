#!/usr/bin/env node
// Entry of the `runctl` binary.
//
// `runctl --version`, `runctl --help` and a bare `runctl` are answered by the
// fast path from package.json files and oclif manifests, without importing
// @oclif/core (which costs several times a bare Node start). A plain
// foreground `runctl local` runs from one bundled file, also without oclif
// (src/local-fast-path.ts says which cases it takes), loaded with a V8 code
// cache (src/bundle-loader.ts). Everything else goes to
// oclif. Errors raised before a command runs (unknown command, bad
// topic) also get runctl's envelope and exit codes; that module pulls in
// @runctl/core, so it is loaded only when something failed.
import module from "node:module";
import { fileURLToPath } from "node:url";
import { fastPath } from "../dist/fast-path.js";

const argv = process.argv.slice(2);
const cliRoot = fileURLToPath(new URL("..", import.meta.url));
if (!((argv[0] === "local" && (await localFastPath())) || fastPath(argv, cliRoot))) {
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

/** The bundled `runctl local` fast path; false when it declines (or was not built). */
async function localFastPath() {
  if (process.env.RUNCTL_NO_FAST_PATH) return false;
  const bundleFile = fileURLToPath(new URL("../dist/local.bundle.cjs", import.meta.url));
  const { loadBundle } = await import("../dist/bundle-loader.js");
  let loaded;
  try {
    loaded = loadBundle(bundleFile);
  } catch (error) {
    if (error?.code === "ENOENT") return false;
    throw error;
  }
  const taken = await loaded.bundle.run(argv, cliRoot);
  loaded.saveCache();
  return taken;
}
