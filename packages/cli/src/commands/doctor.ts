import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { NatsSettings } from "@runctl/control";
import { isRunctlError, type RunctlConfig, redactUrlCredentials, toRunctlError } from "@runctl/core";
import { RunctlCommand } from "../command.ts";
import { table } from "../output.ts";

const run = promisify(execFile);

type CheckStatus = "ok" | "warn" | "fail";

interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

interface DoctorResult {
  [key: string]: unknown;
  healthy: boolean;
  checks: Check[];
}

/** Below this runctl does not start (require of ES modules). */
const MIN_NODE: [number, number] = [20, 19];
/** Supported: Node 22.12+ and 24 (the maintained LTS lines), as package.json's engines say. */
const SUPPORTED_NODE: [number, number] = [22, 12];
const MIN_PYTHON: [number, number] = [3, 9];

export default class Doctor extends RunctlCommand<DoctorResult> {
  static override summary = "Check this machine and the configuration, and say how to fix what is missing.";
  static override description =
    "Checks Node, the Python interpreter runs will use, uv, the configuration files, every registered provider's configuration and, when configured, that the NATS server answers and has JetStream. Exits 1 when a check fails; warnings do not fail.";
  static override examples = ["<%= config.bin %> doctor", "<%= config.bin %> doctor --json"];

  async run(): Promise<DoctorResult> {
    await this.parse(Doctor);
    const checks: Check[] = [checkNode()];

    let config: RunctlConfig | undefined;
    try {
      const loaded = await this.runctlConfig();
      config = loaded.config;
      const files = loaded.sources.flatMap((s) => (s.path ? [s.path] : []));
      checks.push({ name: "config", status: "ok", detail: files.join(", ") || "defaults (no config files)" });
    } catch (error) {
      const err = toRunctlError(error);
      checks.push({
        name: "config",
        status: "fail",
        detail: err.message,
        fix: err.hint ?? "Run `runctl config validate`.",
      });
    }

    const python = config?.local.python ?? "python3";
    checks.push(await checkPython(python), await checkUv());

    const load = await this.providers();
    for (const failure of load.failures) {
      checks.push({
        name: `plugin ${failure.plugin}`,
        status: "fail",
        detail: failure.message,
        fix: `Reinstall or remove it: \`runctl plugins uninstall ${failure.plugin}\`.`,
      });
    }
    if (config) {
      for (const provider of load.registry.list()) {
        const section = (config as Record<string, unknown>)[provider.name];
        try {
          await load.registry.create(provider.name, section, {
            env: process.env,
            dataDir: this.config.dataDir,
          });
          checks.push({ name: `provider ${provider.name}`, status: "ok", detail: provider.description });
        } catch (error) {
          const err = toRunctlError(error);
          checks.push({
            name: `provider ${provider.name}`,
            status: isRunctlError(error) && err.kind === "config" ? "fail" : "warn",
            detail: err.message,
            ...(err.hint ? { fix: err.hint } : {}),
          });
        }
      }
    }

    const nats = config ? await this.natsSettings(undefined) : undefined;
    if (nats) checks.push(await checkNats(nats));

    const healthy = checks.every((c) => c.status !== "fail");
    this.log(
      table(
        ["CHECK", "STATUS", "DETAIL"],
        checks.map((c) => [c.name, c.status.toUpperCase(), c.detail]),
      ),
    );
    for (const c of checks.filter((c) => c.fix && c.status !== "ok")) this.log(`\n${c.name}: ${c.fix}`);
    if (!healthy) process.exitCode = 1;
    return { healthy, checks };
  }
}

function atLeast(version: number[], min: [number, number]): boolean {
  const [major = 0, minor = 0] = version;
  return major > min[0] || (major === min[0] && minor >= min[1]);
}

function checkNode(): Check {
  const version = process.versions.node.split(".").map(Number);
  if (!atLeast(version, MIN_NODE)) {
    return {
      name: "node",
      status: "fail",
      detail: `v${process.versions.node} is older than ${MIN_NODE.join(".")}`,
      fix: `Install Node ${SUPPORTED_NODE.join(".")} or newer (Node 22 or 24 LTS, from nodejs.org or your package manager).`,
    };
  }
  if (!atLeast(version, SUPPORTED_NODE)) {
    return {
      name: "node",
      status: "warn",
      detail: `v${process.versions.node} works but is not supported (Node 20 reached end of life in April 2026)`,
      fix: `Upgrade to Node ${SUPPORTED_NODE.join(".")} or newer (Node 22 or 24 LTS).`,
    };
  }
  return { name: "node", status: "ok", detail: `v${process.versions.node}` };
}

async function checkPython(interpreter: string): Promise<Check> {
  try {
    const { stdout, stderr } = await run(interpreter, ["--version"], { timeout: 15_000 });
    const text = (stdout || stderr).trim();
    const version = (/(\d+)\.(\d+)/.exec(text) ?? []).slice(1).map(Number);
    if (!atLeast(version, MIN_PYTHON)) {
      return {
        name: "python",
        status: "warn",
        detail: `${interpreter}: ${text}`,
        fix: `Training scripts need Python ${MIN_PYTHON.join(".")}+; set \`local.python\` in .runctl.toml to a newer interpreter.`,
      };
    }
    return { name: "python", status: "ok", detail: `${interpreter}: ${text}` };
  } catch {
    return {
      name: "python",
      status: "warn",
      detail: `${interpreter} not found`,
      fix: "Install Python 3.9+ (e.g. `apt-get install python3`) or set `local.python` in .runctl.toml.",
    };
  }
}

async function checkUv(): Promise<Check> {
  try {
    const { stdout } = await run("uv", ["--version"], { timeout: 15_000 });
    return { name: "uv", status: "ok", detail: stdout.trim() };
  } catch {
    return {
      name: "uv",
      status: "warn",
      detail: "not found; .py scripts will run with the configured Python",
      fix: "Optional: install uv to honour PEP 723 inline dependencies (https://docs.astral.sh/uv/).",
    };
  }
}

/**
 * NATS must answer and have JetStream for this account: runctl's control
 * channel is a JetStream stream. A server started without `-js` greets and
 * accepts connections like any other, so the check asks JetStream itself
 * (`$JS.API.INFO`, the account-info request every JetStream client uses).
 */
async function checkNats(settings: NatsSettings): Promise<Check> {
  const { connectNats, openServerWarning } = await import("@runctl/control");
  const where = settings.url
    ? redactUrlCredentials(settings.url)
    : settings.context
      ? `context ${settings.context}`
      : "the configured server";
  const fail = (detail: string, fix: string): Check => ({ name: "nats", status: "fail", detail, fix });
  let nc: Awaited<ReturnType<typeof connectNats>>;
  try {
    nc = await connectNats(settings);
  } catch (error) {
    const err = toRunctlError(error);
    return fail(err.message, "Start the server (`nats-server -js`) or fix `nats.url` / RUNCTL_NATS_URL.");
  }
  try {
    const reply = await nc.request("$JS.API.INFO", "", { timeout: 3000 });
    const info = JSON.parse(new TextDecoder().decode(reply.data)) as {
      error?: { description?: string };
      streams?: number;
    };
    if (info.error) {
      return fail(
        `${where}: JetStream answered with an error: ${info.error.description ?? "unknown"}`,
        "Enable JetStream for this account in the server's configuration (`jetstream {}` and the account's limits).",
      );
    }
    // Without authentication, anyone who reaches the server steers any run on it.
    const open = openServerWarning(nc);
    if (open !== undefined) {
      return {
        name: "nats",
        status: "warn",
        detail: `${where} answers, JetStream enabled, and accepts clients without credentials`,
        fix: 'Anyone who can reach this server can steer any run on it: require authentication (docs/protocol.md, "Security").',
      };
    }
    return {
      name: "nats",
      status: "ok",
      detail: `${where} answers (authentication required), JetStream enabled (${info.streams ?? 0} streams)`,
    };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return fail(
      `${where} answers, but JetStream does not (${/no responders|503/i.test(message) ? "not enabled" : message})`,
      "Start the server with JetStream: `nats-server -js` (or `jetstream {}` in its configuration).",
    );
  } finally {
    await nc.close().catch(() => {});
  }
}
