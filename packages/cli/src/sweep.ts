/**
 * Sweep files (whirr's format, YAML): a program, parameters with `values`
 * (grid or random choice) or a `distribution` (random), expanded into one job
 * per combination with `--<param> <value>` appended to the program. Random
 * sweeps are seeded, so the same file and seed always give the same jobs.
 */
import { readFile } from "node:fs/promises";
import { parseAt, UserError } from "@runctl/core";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { z } from "zod";

const Scalar = z.union([z.string(), z.number(), z.boolean()]);

const Parameter = z.union([
  z.strictObject({ values: z.array(Scalar).min(1) }),
  z
    .strictObject({
      distribution: z.enum(["uniform", "log_uniform", "int_uniform"]),
      min: z.number(),
      max: z.number(),
    })
    .refine((p) => p.min <= p.max, "min must not exceed max")
    .refine((p) => p.distribution !== "log_uniform" || p.min > 0, "log_uniform needs min > 0"),
]);

export const SweepFile = z.strictObject({
  name: z.string().min(1).max(100).optional(),
  /** `python train.py` (split on spaces, as whirr does) or an argv list. */
  program: z.union([z.string().min(1), z.array(z.string()).min(1)]),
  method: z.enum(["grid", "random"]).default("grid"),
  /** Random sweeps: how many jobs. */
  max_runs: z.number().int().min(1).max(10_000).optional(),
  /** Random sweeps: the seed (else one is drawn and reported). */
  seed: z.number().int().optional(),
  parameters: z
    .record(z.string().regex(/^[A-Za-z0-9_.-]+$/), Parameter)
    .refine((p) => Object.keys(p).length > 0, {
      message: "at least one parameter",
    }),
  // Applied to every job of the sweep.
  priority: z.number().int().min(-1000).max(1000).optional(),
  gpus: z.number().int().min(0).max(64).optional(),
  timeout_seconds: z.number().positive().optional(),
  max_retries: z.number().int().min(0).max(100).optional(),
  tags: z.array(z.string().min(1)).optional(),
});
export type SweepFile = z.output<typeof SweepFile>;

export interface SweepJob {
  name: string;
  command_argv: string[];
  config: Record<string, string | number | boolean>;
  tags: string[];
}

const MAX_JOBS = 10_000;

export async function readSweepFile(path: string): Promise<SweepFile> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new UserError(`Cannot read sweep file ${path}: ${(error as Error).message}`, {
      code: "sweep_unreadable",
      hint: "Give the path of a sweep YAML file (see `runctl sweep --help`).",
    });
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? `:${error.linePos[0].line}` : "";
    throw new UserError(`${path}${where}: not valid YAML: ${(error as Error).message.split("\n")[0]}`, {
      code: "sweep_invalid",
      hint: "Fix the YAML syntax at that line.",
    });
  }
  return parseAt(SweepFile, data, {
    what: `sweep file ${path}`,
    kind: "user",
    code: "sweep_invalid",
    hint: "Fix the named keys (see `runctl sweep --help` for the format).",
  });
}

/** The jobs of a sweep, in a stable order; `seed` is the one used (random sweeps). */
export function expandSweep(sweep: SweepFile, seed: number): SweepJob[] {
  const base = sweep.name ?? "sweep";
  const program =
    typeof sweep.program === "string" ? sweep.program.split(/\s+/).filter(Boolean) : sweep.program;
  const names = Object.keys(sweep.parameters);
  let combos: Record<string, string | number | boolean>[];
  if (sweep.method === "grid") {
    combos = [{}];
    for (const name of names) {
      const p = sweep.parameters[name];
      if (!p || !("values" in p)) {
        throw new UserError(`Parameter ${name} has a distribution, which a grid sweep cannot enumerate`, {
          code: "sweep_invalid",
          hint: "Give it `values: [...]`, or use `method: random` with `max_runs`.",
        });
      }
      combos = combos.flatMap((c) => p.values.map((v) => ({ ...c, [name]: v })));
      if (combos.length > MAX_JOBS) throw tooMany(combos.length);
    }
  } else {
    if (sweep.max_runs === undefined) {
      throw new UserError("A random sweep needs max_runs", {
        code: "sweep_invalid",
        hint: "Add `max_runs: 20` (how many jobs to draw).",
      });
    }
    const random = mulberry32(seed);
    combos = Array.from({ length: sweep.max_runs }, () =>
      Object.fromEntries(
        names.map((name) => [name, draw(sweep.parameters[name] as z.output<typeof Parameter>, random)]),
      ),
    );
  }
  return combos.map((config, i) => ({
    name: `${base}-${i}`,
    command_argv: [...program, ...Object.entries(config).flatMap(([k, v]) => [`--${k}`, String(v)])],
    config,
    tags: [`sweep:${base}`, ...(sweep.tags ?? [])],
  }));
}

function draw(p: z.output<typeof Parameter>, random: () => number): string | number | boolean {
  if ("values" in p) return p.values[Math.floor(random() * p.values.length)] as string | number | boolean;
  switch (p.distribution) {
    case "uniform":
      return p.min + random() * (p.max - p.min);
    case "log_uniform":
      return Math.exp(Math.log(p.min) + random() * (Math.log(p.max) - Math.log(p.min)));
    case "int_uniform":
      return Math.floor(p.min) + Math.floor(random() * (Math.floor(p.max) - Math.floor(p.min) + 1));
  }
}

/** A small seeded PRNG (mulberry32): reproducible draws, not cryptography. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function tooMany(n: number): UserError {
  return new UserError(`The sweep expands to ${n}+ jobs (limit ${MAX_JOBS})`, {
    code: "sweep_too_large",
    hint: "Use fewer values, or `method: random` with max_runs.",
  });
}
