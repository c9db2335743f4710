/**
 * Turns `runctl local <script|command> [args]` into the argv to execute.
 *
 * A `.py` file runs under, in order: `--python`, `local.python` from the
 * configuration, the active virtualenv (`$VIRTUAL_ENV/bin/python`), `uv run`
 * when uv is installed (so PEP 723 inline metadata is honoured), else `python3`
 * from PATH. Any other file must be executable and runs directly; a name that is
 * not a file is looked up on PATH like a shell would.
 */
import { accessSync, constants, statSync } from "node:fs";
import { basename, delimiter, isAbsolute, join, resolve } from "node:path";
import { UserError } from "@runctl/core";

export type LaunchKind = "python" | "uv" | "executable";

export interface LaunchCommand {
  argv: string[];
  kind: LaunchKind;
  /** The script file, when one was given (used to name the run). */
  script: string | undefined;
}

export interface ResolveLaunchOptions {
  target: string;
  args: string[];
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  /** `--python` */
  python?: string | undefined;
  /** `local.python` from the configuration (relative paths are relative to cwd). */
  configPython?: string | undefined;
  /** Run the target as given, without choosing an interpreter for `.py` files (`runctl exec`). */
  raw?: boolean;
}

export function findOnPath(
  name: string,
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  if (name.includes("/")) return isExecutable(name) ? name : undefined;
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The interpreter for a Python script, and whether it is `uv run`. */
export function pythonFor(options: ResolveLaunchOptions): { argv: string[]; kind: LaunchKind } {
  const explicit = options.python ?? options.configPython;
  if (explicit) {
    const path = explicit.includes("/") ? resolve(options.cwd, explicit) : explicit;
    const found = findOnPath(path, options.env);
    if (!found) {
      throw new UserError(`Python interpreter "${explicit}" not found or not executable`, {
        code: "python_not_found",
        hint: options.python
          ? "Pass an existing interpreter to --python, e.g. --python .venv/bin/python."
          : "Fix `local.python` in .runctl.toml (or unset it to use the active venv, uv or python3).",
      });
    }
    return { argv: [found], kind: "python" };
  }
  const venv = options.env.VIRTUAL_ENV;
  if (venv && isExecutable(join(venv, "bin", "python")))
    return { argv: [join(venv, "bin", "python")], kind: "python" };
  const uv = findOnPath("uv", options.env);
  if (uv) return { argv: [uv, "run"], kind: "uv" };
  const python3 = findOnPath("python3", options.env);
  if (!python3) {
    throw new UserError("No Python interpreter found (looked for a virtualenv, uv and python3)", {
      code: "python_not_found",
      hint: "Install Python 3.9+ or uv, activate a virtualenv, or pass --python /path/to/python.",
    });
  }
  return { argv: [python3], kind: "python" };
}

export function resolveLaunchCommand(options: ResolveLaunchOptions): LaunchCommand {
  const { target, args, cwd } = options;
  const path = resolve(cwd, target);
  if (target.endsWith(".py") && !options.raw) {
    if (!isFile(path)) {
      throw new UserError(`Script not found: ${target}`, {
        code: "script_not_found",
        hint: `Check the path (looked in ${cwd}).`,
      });
    }
    const py = pythonFor(options);
    return { argv: [...py.argv, path, ...args], kind: py.kind, script: path };
  }
  if (isFile(path) && (target.includes("/") || isAbsolute(target) || !findOnPath(target, options.env))) {
    if (!isExecutable(path)) {
      throw new UserError(`${target} is not executable`, {
        code: "not_executable",
        hint: `Make it executable (chmod +x ${target}) or name its interpreter: runctl local -- bash ${target}.`,
      });
    }
    return { argv: [path, ...args], kind: kindOf(path), script: path };
  }
  const onPath = findOnPath(target, options.env);
  if (!onPath) {
    throw new UserError(`No script or command named "${target}"`, {
      code: "script_not_found",
      hint: "Give a path to a script (e.g. train.py) or a command on PATH.",
    });
  }
  return { argv: [onPath, ...args], kind: kindOf(onPath), script: undefined };
}

/**
 * A command that is itself a Python interpreter (`python3 train.py` given as
 * a plain command, as queue jobs are) is a Python run all the same: its
 * packages are captured with that interpreter.
 */
function kindOf(executable: string): LaunchKind {
  return /^python(\d+(\.\d+)?)?$/.test(basename(executable)) ? "python" : "executable";
}
