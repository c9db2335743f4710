// Builds the agent into one file, dist/agent.bundle.mjs: what a launcher starts
// (`node agent.bundle.mjs <spec.json>`) and what a remote machine downloads. One
// file loads in about half the CPU time of the module graph it replaces
// (bench/local-overhead), and needs no node_modules besides the Python client
// it finds next to it. esbuild-wasm: no platform binary in the lock file.
import { stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild-wasm";

const dist = fileURLToPath(new URL("../dist/", import.meta.url));
await esbuild.build({
  entryPoints: [`${dist}agent-main.js`],
  outfile: `${dist}agent.bundle.mjs`,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // msgpackr's optional native accelerator: loaded when present, plain JS otherwise.
  external: ["msgpackr-extract"],
  // CommonJS dependencies inside an ES module bundle call require().
  banner: {
    js: '#!/usr/bin/env node\nimport { createRequire as __runctlRequire } from "node:module";\nconst require = __runctlRequire(import.meta.url);',
  },
  legalComments: "none",
  logLevel: "warning",
});
const { size } = await stat(`${dist}agent.bundle.mjs`);
process.stdout.write(`agent bundle: dist/agent.bundle.mjs (${(size / 1024).toFixed(0)} KiB)\n`);
