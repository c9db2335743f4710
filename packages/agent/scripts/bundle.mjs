// Builds the agent into one file, dist/agent.bundle.mjs: what a launcher starts
// (`node agent.bundle.mjs <spec.json>`) and what a remote machine downloads. One
// file loads in about half the CPU time of the module graph it replaces
// (bench/local-overhead), and needs no node_modules: the Python client rides
// along as a zip (used where @runctl/client-python cannot be found). Its sha256
// goes to dist/agent.bundle.json, for uploading it once per content as
// `agents/<sha256>.mjs`. esbuild-wasm: no platform binary in the lock file.
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild-wasm";
import { buildPythonClientZip } from "./python-zip.mjs";

const dist = fileURLToPath(new URL("../dist/", import.meta.url));
const python = await buildPythonClientZip();
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
  define: {
    __RUNCTL_PYTHON_ZIP__: JSON.stringify(Buffer.from(python.zip).toString("base64")),
    __RUNCTL_PYTHON_ZIP_SHA256__: JSON.stringify(python.sha256),
  },
  legalComments: "none",
  logLevel: "warning",
});
const bytes = await readFile(`${dist}agent.bundle.mjs`);
const { version } = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
const sha256 = createHash("sha256").update(bytes).digest("hex");
await writeFile(
  `${dist}agent.bundle.json`,
  `${JSON.stringify({ sha256, bytes: bytes.length, version, pythonClientSha256: python.sha256 }, null, 2)}\n`,
);
process.stdout.write(
  `agent bundle: dist/agent.bundle.mjs (${(bytes.length / 1024).toFixed(0)} KiB, sha256 ${sha256.slice(0, 12)}…)\n`,
);
