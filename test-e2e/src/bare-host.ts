/**
 * The bare host: a "machine" that runs a bootstrap (EC2 user-data, a RunPod container
 * argument) as a fresh process tree. `/bin/sh` (dash) runs it in a new session with an empty
 * HOME, `RUNCTL_HOME` in a temporary directory and a PATH of the few tools a minimal image has
 * (no `node`, no `runctl`); `shutdown`, `poweroff` and `halt` on that PATH record the request
 * and the machine goes away: every process of the host is killed. The cloud emulators start
 * their virtual machines with it.
 *
 *   const host = await startBareHost({ userData: buildBootstrap({...}) });
 *   await host.exited;                       // the bootstrap returned
 *   (await host.logs()).bootstrap           // $RUNCTL_HOME/bootstrap.log
 *   await host.close();                      // nothing of the host outlives this
 *
 * A process belongs to the host when its environment carries the host's `RUNCTL_HOME`, which
 * everything the bootstrap starts inherits, also what it detaches with setsid: that is how
 * `kill()` finds them all.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

/**
 * What a minimal Linux image has and the bootstrap may use, besides `python3` (Debian's, with
 * torch) for training scripts. Resolved on this machine; a missing one is left out.
 */
export const MINIMAL_HOST_TOOLS: readonly string[] = [
  "sh",
  "curl",
  "wget",
  "tar",
  "gzip",
  "sha256sum",
  "mkdir",
  "rm",
  "mv",
  "ln",
  "cat",
  "chmod",
  "date",
  "uname",
  "id",
  "sleep",
  "setsid",
  "nohup",
  "env",
  "ls",
  "grep",
  "sed",
  "tr",
  "head",
  "python3",
];

const TOOL_SOURCES: Readonly<Record<string, string>> = { python3: "/usr/bin/python3", sh: "/bin/sh" };

export interface BareHostOptions {
  /** The script the machine runs at boot. */
  userData: string;
  /** More of the machine's environment (not the user-data's). */
  env?: Record<string, string>;
  /** A `node` to put on PATH: a machine image with Node installed. Default: none. */
  node?: string;
  /** The tools on PATH, by name; default MINIMAL_HOST_TOOLS. */
  tools?: readonly string[];
  /**
   * Take every tool busybox has from busybox (`/usr/bin/busybox`), `sh` included: an
   * Alpine-like image. Tools it lacks (curl) are left out; `python3` stays Debian's.
   */
  busybox?: boolean;
  /** More executables on PATH, by name and content (a `uname` that names another CPU). */
  scripts?: Record<string, string>;
  /** Keep the temporary directories after close(), for debugging. */
  keep?: boolean;
  /**
   * Leave `shutdown`, `poweroff` and `halt` off PATH: a container, whose image has no init to
   * ask (on RunPod a pod stops through RunPod's API).
   */
  noShutdown?: boolean;
}

export interface BareHost {
  /** The host's temporary root: `home/` (HOME, empty), `runctl/` (RUNCTL_HOME), `bin/`, `machine/`. */
  root: string;
  /** `$RUNCTL_HOME` on the host. */
  runctlHome: string;
  /** `$HOME` on the host (empty at boot). */
  userHome: string;
  /** The environment the bootstrap runs with. */
  env: Readonly<Record<string, string>>;
  /** The first bootstrap run's exit code (null: killed). */
  exited: Promise<number | null>;
  /** Runs the user-data again on the same machine (a cloud-init re-run); resolves with its exit code. */
  rerun(): Promise<number | null>;
  /** Resolves with the shutdown command line once the host asked to shut down (then it is gone). */
  shutdownRequested: Promise<string>;
  /** The shutdown command line, if one was run. */
  shutdownRequest(): string | undefined;
  /** `bootstrap.log`, `agent.log`, and what the bootstrap wrote before its log existed. */
  logs(): Promise<{ bootstrap: string; agent: string; console: string }>;
  /** Pids of the host's living processes. */
  processes(): Promise<number[]>;
  /** Kills every process of the host (the machine is switched off). */
  kill(): Promise<void>;
  /**
   * Stops the host as `docker stop` stops a container: SIGTERM to the main process (the
   * user-data's, or its last rerun), then, once it exited or after `graceMs`, kill().
   */
  terminate(graceMs: number): Promise<void>;
  /** kill(), then removes the temporary directories. */
  close(): Promise<void>;
}

function which(name: string): string | undefined {
  const fixed = TOOL_SOURCES[name];
  if (fixed) return existsSync(fixed) ? fixed : undefined;
  return ["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map((d) => join(d, name)).find((p) => existsSync(p));
}

const BUSYBOX = "/usr/bin/busybox";

async function busyboxApplets(): Promise<Set<string>> {
  if (!existsSync(BUSYBOX)) {
    throw new Error(`${BUSYBOX} is missing: apt-get install busybox (scripts/test-all.sh does)`);
  }
  const { stdout } = await promisify(execFile)(BUSYBOX, ["--list"]);
  return new Set(stdout.split("\n").filter(Boolean));
}

/** Processes whose environment holds `RUNCTL_HOME=<home>` exactly. */
async function processesOf(home: string): Promise<number[]> {
  const needle = Buffer.from(`\0RUNCTL_HOME=${home}\0`);
  const first = Buffer.from(`RUNCTL_HOME=${home}\0`);
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const environ = await readFile(`/proc/${pid}/environ`);
      if (environ.includes(needle) || environ.subarray(0, first.length).equals(first)) pids.push(pid);
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

export async function startBareHost(options: BareHostOptions): Promise<BareHost> {
  const root = await mkdtemp(join(tmpdir(), "runctl-bare-host-"));
  const userHome = join(root, "home");
  const runctlHome = join(root, "runctl");
  const bin = join(root, "bin");
  const machine = join(root, "machine");
  await Promise.all([userHome, runctlHome, bin, machine].map((d) => mkdir(d, { recursive: true })));
  const applets = options.busybox ? await busyboxApplets() : new Set<string>();
  for (const tool of options.tools ?? MINIMAL_HOST_TOOLS) {
    const source =
      options.busybox && tool !== "python3" ? (applets.has(tool) ? BUSYBOX : undefined) : which(tool);
    if (source) await symlink(source, join(bin, tool));
  }
  if (options.node) await symlink(options.node, join(bin, "node"));
  for (const [name, content] of Object.entries(options.scripts ?? {})) {
    await rm(join(bin, name), { force: true });
    await writeFile(join(bin, name), content, { mode: 0o755 });
  }
  const shutdownFile = join(machine, "shutdown");
  for (const name of options.noShutdown ? [] : ["shutdown", "poweroff", "halt"]) {
    const path = join(bin, name);
    // Records the request; the harness then takes the machine away.
    await writeFile(path, `#!/bin/sh\nprintf '%s\\n' "${name} $*" >>'${shutdownFile}'\n`);
    await chmod(path, 0o755);
  }
  const userData = join(machine, "user-data");
  await writeFile(userData, options.userData, { mode: 0o700 });
  const env: Record<string, string> = {
    HOME: userHome,
    PATH: bin,
    LANG: "C",
    RUNCTL_HOME: runctlHome,
    // A systemd unit would be installed on the machine running the tests: the loop instead.
    RUNCTL_SUPERVISOR: "loop",
    ...options.env,
  };

  let consoleText = "";
  const children: ChildProcess[] = [];
  const boot = (): Promise<number | null> => {
    const child = spawn(join(bin, "sh"), [userData], {
      cwd: "/",
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    const collect = (chunk: Buffer) => {
      consoleText += chunk.toString("utf8");
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    return new Promise((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code) => resolve(code));
    });
  };

  let gone = false;
  const kill = async () => {
    for (const child of children) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
    // SIGKILLed processes stop matching once they are zombies; their children may have been
    // started in between, so go round until none is left.
    for (let round = 0; round < 100; round++) {
      const pids = await processesOf(runctlHome);
      if (pids.length === 0) return;
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(
      `bare host ${root}: processes survive SIGKILL: ${(await processesOf(runctlHome)).join(" ")}`,
    );
  };

  let request: string | undefined;
  let watching: NodeJS.Timeout | undefined;
  const shutdownRequested = new Promise<string>((resolve) => {
    // The fake shutdown is a script on the host's PATH; it leaves a file behind.
    watching = setInterval(() => {
      if (gone || !existsSync(shutdownFile)) return;
      clearInterval(watching);
      void readFile(shutdownFile, "utf8").then(async (text) => {
        request = text.trim();
        gone = true;
        await kill();
        resolve(request);
      });
    }, 50);
  });

  const exited = boot();
  const readOr = (path: string) => readFile(path, "utf8").catch(() => "");
  return {
    root,
    runctlHome,
    userHome,
    env,
    exited,
    rerun: boot,
    shutdownRequested,
    shutdownRequest: () => request,
    logs: async () => ({
      bootstrap: await readOr(join(runctlHome, "bootstrap.log")),
      agent: await readOr(join(runctlHome, "agent.log")),
      console: consoleText,
    }),
    processes: () => processesOf(runctlHome),
    kill,
    terminate: async (graceMs: number) => {
      const main = children.at(-1);
      if (main?.pid !== undefined && main.exitCode === null && main.signalCode === null) {
        const exited = new Promise<void>((resolve) => main.once("exit", () => resolve()));
        let timer: NodeJS.Timeout | undefined;
        try {
          process.kill(main.pid, "SIGTERM");
          await Promise.race([exited, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
        } catch {
          // gone already
        } finally {
          clearTimeout(timer);
        }
      }
      await kill();
    },
    close: async () => {
      clearInterval(watching);
      gone = true;
      await kill();
      if (!options.keep) await rm(root, { recursive: true, force: true });
    },
  };
}
