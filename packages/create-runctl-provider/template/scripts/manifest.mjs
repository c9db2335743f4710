// Writes oclif.manifest.json: runctl lists this plugin's commands (`runctl --help`) from it
// without loading them. The same as `oclif manifest`, without the oclif CLI's dependencies.
import { writeFileSync } from "node:fs";
import { Plugin } from "@oclif/core";

const plugin = new Plugin({
  root: process.cwd(),
  type: "core",
  isRoot: true,
  ignoreManifest: true,
  errorOnManifestCreate: true,
});
await plugin.load();
writeFileSync("oclif.manifest.json", `${JSON.stringify(plugin.manifest, null, 2)}\n`);
process.stdout.write(`oclif.manifest.json: ${Object.keys(plugin.manifest.commands).length} commands\n`);
