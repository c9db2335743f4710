/** Where configuration files live. */
import { stat } from "node:fs/promises";
import { dirname, isAbsolute, join, resolve } from "node:path";

export const PROJECT_CONFIG_NAME = ".runctl.toml";

/**
 * The user config file: `$XDG_CONFIG_HOME/runctl/config.toml`, else
 * `<homedir>/.config/runctl/config.toml`. A relative XDG_CONFIG_HOME is
 * ignored, as the XDG spec requires. `env` and `homedir` are inputs so callers
 * (and tests) decide which home is meant.
 */
export function userConfigPath(env: Readonly<Record<string, string | undefined>>, homedir: string): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(homedir, ".config");
  return join(base, "runctl", "config.toml");
}

/**
 * runctl's data directory (job server database, worker state):
 * `$XDG_DATA_HOME/runctl`, else `<homedir>/.local/share/runctl`.
 */
export function userDataDir(env: Readonly<Record<string, string | undefined>>, homedir: string): string {
  const xdg = env.XDG_DATA_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir, ".local", "share"), "runctl");
}

/**
 * The nearest `.runctl.toml` in `cwd` or one of its ancestors, up to the
 * filesystem root; undefined when there is none.
 */
export async function findProjectConfig(cwd: string): Promise<string | undefined> {
  let dir = resolve(cwd);
  for (;;) {
    const candidate = join(dir, PROJECT_CONFIG_NAME);
    if (await isFile(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
