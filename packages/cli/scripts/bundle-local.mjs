// Builds dist/local.bundle.cjs: the fast path of `runctl local` (src/local-fast-path.ts) in one
// file with the `runctl:providers` hooks of the CLI's first-party plugins, as listed in
// package.json when it was built (the fast path declines when the list differs at run time).
// One file, because loading the same modules one by one from node_modules costs Node 20 more
// than the whole run of a short script (bench/local-overhead). esbuild-wasm: no platform
// binary in the lock file (as the agent's bundle).
//
// What the fast path never runs stays out: the providers' own modules behind their hooks'
// `create` (the AWS SDK, GraphQL) for every provider but `local`, and @runctl/control's main
// entry (the NATS client, for runs the fast path declines).
import { existsSync, realpathSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join, sep } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild-wasm";

const HOOK = "runctl:providers";
const root = fileURLToPath(new URL("..", import.meta.url));
const packagesDir = dirname(realpathSync(root)) + sep;
/** A package's directory as Node finds it from the CLI (some plugins export no package.json). */
function packageRoot(name) {
  for (let dir = root; ; dir = dirname(dir)) {
    // The real path: esbuild names importers by it (workspace packages are symlinks).
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return realpathSync(candidate);
    if (dirname(dir) === dir) throw new Error(`${name} is not installed`);
  }
}
const pjson = JSON.parse(await readFile(join(root, "package.json"), "utf8"));

const plugins = [];
for (const name of pjson.oclif?.plugins ?? []) {
  const pluginRoot = packageRoot(name);
  const hooks = JSON.parse(await readFile(join(pluginRoot, "package.json"), "utf8")).oclif?.hooks ?? {};
  const entries = [hooks[HOOK] ?? []].flat();
  if (entries.length > 1) throw new Error(`${name}: more than one ${HOOK} hook`);
  plugins.push({ name, root: pluginRoot, hook: entries[0] ? join(pluginRoot, entries[0]) : undefined });
}

const entry = [
  // First, so that it holds for every schema the other modules build: zod compiles a parser for
  // an object schema the first time it parses; this process parses a few schemas a few times,
  // far too few for that to pay off.
  `import ${JSON.stringify(join(root, "scripts", "zod-jitless.mjs"))};`,
  `import { localFastPath } from ${JSON.stringify(join(root, "dist", "local-fast-path.js"))};`,
  ...plugins.flatMap((p, i) => (p.hook ? [`import hook${i} from ${JSON.stringify(p.hook)};`] : [])),
  "const built = [",
  ...plugins.map((p, i) => `  { name: ${JSON.stringify(p.name)}${p.hook ? `, providers: hook${i}` : ""} },`),
  "];",
  "export function run(argv, cliRoot) { return localFastPath(argv, cliRoot, built); }",
].join("\n");

const local = plugins.find((p) => p.name === "@runctl/provider-local");
const elsewhere = plugins.filter((p) => p !== local && p.hook).map((p) => p.root + sep);
const NEVER = "runctl-fast-path:never";
const ZOD_LOCALES = "runctl-fast-path:zod-locales";

const result = await esbuild.build({
  metafile: true,
  stdin: { contents: entry, resolveDir: root, loader: "js", sourcefile: "local-fast-path-entry.js" },
  outfile: join(root, "dist", "local.bundle.cjs"),
  bundle: true,
  platform: "node",
  // A CommonJS function body, run through vm.Script with a code cache (src/bundle-loader.ts),
  // which passes the bundle's URL for import.meta.url.
  format: "cjs",
  define: { "import.meta.url": "__runctlBundleUrl" },
  target: "node20",
  minifySyntax: true,
  minifyWhitespace: true,
  legalComments: "none",
  logLevel: "warning",
  plugins: [
    {
      name: "runctl-fast-path",
      setup(build) {
        // Another provider's `create` is never called here: its SDK stays out of the bundle.
        build.onResolve({ filter: /.*/ }, (args) => {
          if (args.kind === "dynamic-import" && elsewhere.some((dir) => args.importer.startsWith(dir)))
            return { path: args.path, namespace: NEVER };
          // The NATS client: a run the fast path takes has no NATS.
          if (args.path === "@runctl/control") return { path: args.path, external: true };
          return undefined;
        });
        // zod's messages in its 60-odd languages: runctl sets none but English (zod's default).
        build.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
          /[\\/]node_modules[\\/]zod[\\/]/.test(args.importer)
            ? { path: join(dirname(args.importer), "..", "locales", "en.js"), namespace: ZOD_LOCALES }
            : undefined,
        );
        build.onLoad({ filter: /.*/, namespace: ZOD_LOCALES }, (args) => ({
          contents: `export { default as en } from ${JSON.stringify(args.path)};`,
          loader: "js",
          resolveDir: dirname(args.path),
        }));
        // runctl's own modules do nothing when imported but define things (schemas, classes):
        // those nothing here uses (code bundles, bootstraps, remote sync) are left out.
        build.onResolve({ filter: /^(\.|@runctl\/)/ }, async (args) => {
          if (args.pluginData === "runctl-own") return undefined;
          const resolved = await build.resolve(args.path, {
            kind: args.kind,
            importer: args.importer,
            resolveDir: args.resolveDir,
            pluginData: "runctl-own",
          });
          if (resolved.errors.length > 0 || resolved.external) return undefined;
          if (!resolved.path.startsWith(packagesDir) || resolved.path.includes(`${sep}node_modules${sep}`))
            return undefined;
          return { ...resolved, sideEffects: false };
        });
        // A dynamic import makes esbuild initialise the module lazily, and with it every module it
        // reaches, whole: a package's main entry then builds every schema of every module it
        // re-exports, used or not. The fast path loads what these imports load anyway, so they
        // become static imports here, and modules nothing here uses stay out of the bundle.
        build.onLoad({ filter: /\.js$/ }, async (args) => {
          if (!args.path.startsWith(packagesDir) || args.path.includes(`${sep}node_modules${sep}`))
            return undefined;
          if (elsewhere.some((dir) => args.path.startsWith(dir))) return undefined;
          const source = await readFile(args.path, "utf8");
          const imported = [];
          const contents = source.replace(/\bimport\(\s*("[^"]+")\s*\)/g, (call, specifier) => {
            if (specifier === '"@runctl/control"') return call;
            imported.push(specifier);
            return `Promise.resolve(__runctlStatic${imported.length - 1})`;
          });
          if (imported.length === 0) return undefined;
          const statics = imported.map((spec, i) => `import * as __runctlStatic${i} from ${spec};`).join("");
          return { contents: `${statics}${contents}`, loader: "js", resolveDir: dirname(args.path) };
        });
        build.onLoad({ filter: /.*/, namespace: NEVER }, (args) => ({
          contents: `throw new Error(${JSON.stringify(`not in the runctl local fast path: ${args.path}`)});`,
          loader: "js",
        }));
      },
    },
  ],
});
if (process.env.RUNCTL_BUNDLE_META)
  (await import("node:fs")).writeFileSync(process.env.RUNCTL_BUNDLE_META, JSON.stringify(result.metafile));
const [output] = Object.values(result.metafile.outputs);
process.stdout.write(`local fast path: dist/local.bundle.cjs (${(output.bytes / 1024).toFixed(0)} KiB)\n`);
// RUNCTL_BUNDLE_SIZES=1: what takes the room, by package.
if (process.env.RUNCTL_BUNDLE_SIZES) {
  const sizes = new Map();
  for (const [path, { bytesInOutput }] of Object.entries(output.inputs)) {
    const key = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1] ?? path.replace(/\/(dist|src)\/.*/, "");
    sizes.set(key, (sizes.get(key) ?? 0) + bytesInOutput);
  }
  for (const [key, bytes] of [...sizes].sort((a, b) => b[1] - a[1]).slice(0, 20))
    process.stdout.write(`${(bytes / 1024).toFixed(0).padStart(7)} KiB  ${key}\n`);
}
