/**
 * The fast path of `runctl local` in the foreground: what the `local` command
 * does, without starting oclif. oclif's start (its own modules, every
 * plugin's manifest, the command's module graph) costs several times a bare
 * Node start, more than everything else runctl adds to a short run. The run
 * itself goes the one launch path as with oclif: a ProviderRegistry holding
 * what the first-party plugins' `runctl:providers` hooks register, the
 * configuration validated with their sections, the `local` provider the
 * registry creates, `launch`, and the same foreground follow as the command
 * (foreground-run.ts).
 *
 * It takes only the plain cases and declines everything else to oclif, which
 * then does all of it itself: flags it does not take (`--detach`, `--resume`,
 * `--run`, `--nats`, `--checkpoint-dir`, help), flags after the script (before
 * `--`), a value oclif would reject, NATS configured, user-installed plugins
 * or a plugin list other than the one it was built with, and any error before
 * the launch (oclif reports it with the usage hints of the command). Built
 * into one file (scripts/bundle-local.mjs) with those hooks, since loading
 * the same modules one by one costs more than the run.
 */
import { homedir } from "node:os";
import { dirname } from "node:path";
import { resolveCheckpointDir } from "@runctl/agent/checkpoints";
import { note, printError } from "@runctl/command/output";
import { loadConfig, type ProviderDefinition, ProviderRegistry, toRunctlError } from "@runctl/core";
import { resolveRunsDir } from "@runctl/tracker";
import { pluginSetup } from "./fast-path.ts";
import { checkGpuList, parseJsonObjectFlag } from "./flag-values.ts";
import { type LocalRequest, localLaunchSpec, runInForeground } from "./foreground-run.ts";

/** A first-party plugin as the bundle was built with it: its name and its providers hook, if any. */
export interface BuiltPlugin {
  name: string;
  providers?: () => Promise<ProviderDefinition | ProviderDefinition[] | undefined>;
}

/** The flags taken here, as oclif's `local` defines them. */
const VALUE_FLAGS = new Set(["python", "name", "gpus", "config", "run-id", "tag", "grace", "nproc-per-node"]);
const BOOLEAN_FLAGS = new Set(["quiet", "json"]);

interface Parsed {
  values: Map<string, string>;
  tags: string[];
  booleans: Set<string>;
  target: string;
  scriptArgs: string[];
}

/** `local [flags] <target> [args…] [-- args…]`, or undefined for anything oclif should see. */
export function parseLocalArgv(argv: readonly string[]): Parsed | undefined {
  if (argv[0] !== "local") return undefined;
  const values = new Map<string, string>();
  const tags: string[] = [];
  const booleans = new Set<string>();
  let i = 1;
  for (; i < argv.length; i++) {
    const token = argv[i] as string;
    if (!token.startsWith("-")) break;
    if (!token.startsWith("--") || token === "--") return undefined;
    const eq = token.indexOf("=");
    const name = token.slice(2, eq === -1 ? undefined : eq);
    if (BOOLEAN_FLAGS.has(name) && eq === -1) {
      if (booleans.has(name)) return undefined;
      booleans.add(name);
      continue;
    }
    if (!VALUE_FLAGS.has(name)) return undefined;
    let value: string | undefined;
    if (eq !== -1) value = token.slice(eq + 1);
    else {
      value = argv[i + 1];
      i++;
    }
    if (value === undefined || value === "" || value.startsWith("-")) return undefined;
    if (name === "tag") tags.push(value);
    else if (values.has(name)) return undefined;
    else values.set(name, value);
  }
  const target = argv[i];
  if (target === undefined) return undefined;
  const scriptArgs: string[] = [];
  for (i++; i < argv.length; i++) {
    const token = argv[i] as string;
    if (token === "--") {
      scriptArgs.push(...argv.slice(i + 1));
      break;
    }
    // oclif would read it as a flag of `local`.
    if (token.startsWith("-")) return undefined;
    scriptArgs.push(token);
  }
  return { values, tags, booleans, target, scriptArgs };
}

/** A whole number within oclif's min/max for the flag, else undefined (oclif reports it). */
function integerFlag(
  text: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number | undefined {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n >= min && n <= max ? n : undefined;
}

class Decline extends Error {}

/**
 * Runs `runctl local …` and returns true, or returns false having done
 * nothing visible: the caller then hands the arguments to oclif.
 */
export async function localFastPath(
  argv: readonly string[],
  cliRoot: string,
  built: readonly BuiltPlugin[],
): Promise<boolean> {
  if (process.env.RUNCTL_NO_FAST_PATH || process.env.RUNCTL_CONTENT_TYPE) return false;
  const parsed = parseLocalArgv(argv);
  if (!parsed) return false;
  const json = parsed.booleans.has("json");
  let launch: Awaited<ReturnType<typeof prepare>>;
  try {
    launch = await prepare(parsed, cliRoot, built, json);
  } catch {
    // Whatever it was, oclif finds it again and reports it as the command does.
    return false;
  }
  try {
    const result = await runInForeground(launch.provider, launch.spec, launch.runsDir, {
      quiet: parsed.booleans.has("quiet"),
      progress: note,
    });
    if (json) process.stdout.write(`${JSON.stringify({ success: true, ...result }, null, 2)}\n`);
  } catch (error) {
    const err = toRunctlError(error);
    printError(err, json);
    process.exitCode = err.exitCode;
  }
  return true;
}

async function prepare(parsed: Parsed, cliRoot: string, built: readonly BuiltPlugin[], json: boolean) {
  const setup = pluginSetup(cliRoot);
  if (setup.userPlugins) throw new Decline("user plugins");
  if (setup.corePlugins.join("\n") !== built.map((p) => p.name).join("\n")) throw new Decline("plugins");
  const nprocPerNode = integerFlag(parsed.values.get("nproc-per-node"), 1, 1, 256);
  const grace = integerFlag(parsed.values.get("grace"), 10, 0, Number.MAX_SAFE_INTEGER);
  if (nprocPerNode === undefined || grace === undefined) throw new Decline("integer flag");
  const gpus = parsed.values.get("gpus");
  if (gpus !== undefined) checkGpuList(gpus);
  const configText = parsed.values.get("config");
  const runConfig =
    configText === undefined
      ? undefined
      : parseJsonObjectFlag(configText, "--config", "bad_run_config", '{"lr": 0.01}');

  // The registry as oclif's PROVIDERS_HOOK fills it: every plugin's definitions, in plugin order.
  const registry = new ProviderRegistry();
  for (const plugin of built) {
    if (!plugin.providers) continue;
    const value = await plugin.providers();
    for (const definition of Array.isArray(value) ? value : [value]) {
      if (definition) registry.register(definition, { plugin: plugin.name });
    }
  }
  const cwd = process.cwd();
  const loaded = await loadConfig({
    cwd,
    env: process.env,
    homedir: homedir(),
    flags: {},
    sections: registry.configSections(),
  });
  const nats = loaded.config.nats;
  if (nats.url || nats.context) throw new Decline("nats");
  const projectRoot = loaded.projectFile ? dirname(loaded.projectFile) : cwd;
  const runsDir = resolveRunsDir({
    env: process.env,
    configRunsDir: loaded.config.local.runs_dir,
    projectRoot,
    cwd,
  });
  const checkpointDir = resolveCheckpointDir({
    cwd,
    configDir: loaded.config.local.checkpoint_dir,
    projectRoot,
  });
  const provider = await registry.create("local", (loaded.config as Record<string, unknown>).local, {
    env: process.env,
    dataDir: setup.dataDir,
    cwd,
    projectRoot,
  });
  const request: LocalRequest = {
    target: parsed.target,
    scriptArgs: parsed.scriptArgs,
    cwd,
    nprocPerNode,
    gpus,
    python: parsed.values.get("python"),
    raw: false,
    name: parsed.values.get("name"),
    tags: parsed.tags,
    config: runConfig,
    checkpointDir,
    runId: parsed.values.get("run-id"),
    graceSeconds: grace,
    detach: false,
    quiet: parsed.booleans.has("quiet"),
    json,
  };
  return { provider, spec: localLaunchSpec(request), runsDir };
}
