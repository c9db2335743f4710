/**
 * Mirrors the third-party packages this workspace installed into a test registry, so that
 * `npm install runctl` from a registry without uplinks (no network) finds every dependency.
 *
 * The closure is found the way Node resolves packages (node_modules, walking up from the package
 * that depends), starting from the given package directories; each package is packed with the real
 * `npm pack` (one process for all) and published as npm's own publish does (a PUT of the packument
 * with the tarball attached), without running any of its scripts or honouring its publishConfig.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Registry } from "./verdaccio.ts";

interface PackageJson {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  bundleDependencies?: string[] | boolean;
  bundledDependencies?: string[] | boolean;
}

function readPackage(dir: string): PackageJson {
  return JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as PackageJson;
}

function resolveFrom(name: string, fromDir: string): string | undefined {
  let dir = fromDir;
  for (;;) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** Directories of every package the given ones need at run time, except those named in `exclude`. */
export function runtimeClosure(startDirs: readonly string[], exclude: ReadonlySet<string>): string[] {
  const found = new Map<string, string>();
  const queue = [...startDirs];
  const visited = new Set<string>();
  while (queue.length > 0) {
    const dir = queue.shift() as string;
    if (visited.has(dir)) continue;
    visited.add(dir);
    const pkg = readPackage(dir);
    const bundled = pkg.bundleDependencies ?? pkg.bundledDependencies;
    const bundledNames = new Set(
      bundled === true ? Object.keys(pkg.dependencies ?? {}) : Array.isArray(bundled) ? bundled : [],
    );
    const wanted: [string, boolean][] = [
      ...Object.keys(pkg.dependencies ?? {}).map((n): [string, boolean] => [n, false]),
      ...Object.keys(pkg.optionalDependencies ?? {}).map((n): [string, boolean] => [n, true]),
      ...Object.keys(pkg.peerDependencies ?? {}).map((n): [string, boolean] => [
        n,
        pkg.peerDependenciesMeta?.[n]?.optional === true,
      ]),
    ];
    for (const [name, optional] of wanted) {
      if (exclude.has(name) || bundledNames.has(name)) continue;
      const depDir = resolveFrom(name, dir);
      if (!depDir) {
        if (optional) continue;
        throw new Error(`${pkg.name} needs ${name}, which is not installed in this workspace`);
      }
      const dep = readPackage(depDir);
      found.set(`${dep.name}@${dep.version}`, depDir);
      queue.push(depDir);
    }
  }
  return [...found.values()];
}

interface Packed {
  filename: string;
  name: string;
  version: string;
  shasum: string;
  integrity: string;
}

function exec(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }) {
  return new Promise<string>((resolve, reject) => {
    execFile(command, args, { ...options, maxBuffer: 256 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.slice(0, 3).join(" ")} … failed: ${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Packs `dirs` and publishes each to `registry`; packages with several versions get each. */
export async function mirrorPackages(registry: Registry, dirs: readonly string[]): Promise<number> {
  const out = await mkdtemp(join(tmpdir(), "runctl-mirror-"));
  try {
    const packed = JSON.parse(
      await exec("npm", ["pack", ...dirs, "--pack-destination", out, "--json", "--ignore-scripts"], {
        cwd: out,
        env: registry.env(),
      }),
    ) as Packed[];
    const manifests = new Map(dirs.map((d) => [`${readPackage(d).name}@${readPackage(d).version}`, d]));
    // Versions of one package go one after another (each PUT adds a version); packages in parallel.
    const byName = new Map<string, Packed[]>();
    for (const p of packed) byName.set(p.name, [...(byName.get(p.name) ?? []), p]);
    const names = [...byName.keys()];
    const workers = Array.from({ length: 8 }, async () => {
      for (let name = names.shift(); name !== undefined; name = names.shift()) {
        for (const p of byName.get(name) ?? []) {
          const dir = manifests.get(`${p.name}@${p.version}`);
          if (!dir) throw new Error(`npm pack gave ${p.name}@${p.version}, which was not asked for`);
          await publishTarball(registry, readPackage(dir), await readFile(join(out, p.filename)));
        }
      }
    });
    await Promise.all(workers);
    return packed.length;
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

async function publishTarball(registry: Registry, manifest: PackageJson, tarball: Buffer): Promise<void> {
  const { name, version } = manifest;
  const tarballName = `${name}-${version}.tgz`;
  const integrity = `sha512-${createHash("sha512").update(tarball).digest("base64")}`;
  const shasum = createHash("sha1").update(tarball).digest("hex");
  const escaped = name.replace("/", "%2f");
  const body = {
    _id: name,
    name,
    "dist-tags": { latest: version },
    versions: {
      [version]: {
        ...manifest,
        _id: `${name}@${version}`,
        dist: { integrity, shasum, tarball: new URL(`${name}/-/${tarballName}`, registry.url).href },
      },
    },
    _attachments: {
      [tarballName]: {
        content_type: "application/octet-stream",
        data: tarball.toString("base64"),
        length: tarball.length,
      },
    },
  };
  const res = await fetch(new URL(escaped, registry.url), {
    method: "PUT",
    headers: { "content-type": "application/json", authorization: `Bearer ${registry.token}` },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(120_000),
  });
  const text = await res.text();
  // 409: this version is there already (another start dir reached it too).
  if (!res.ok && res.status !== 409)
    throw new Error(`publishing ${name}@${version}: HTTP ${res.status} ${text}`);
}
