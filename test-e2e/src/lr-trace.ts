/**
 * The learning-rate trace fixtures/ddp_control.py writes (`lr.rank<N>.jsonl`,
 * one `{step, lr}` line per step): the steps at which a rank's learning rate
 * changed, so a test can tell that every rank applied a command at the same step.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";

const Point = z.object({ step: z.number(), lr: z.number() });

export function lrChangeSteps(trace: string): number[] {
  const points = trace
    .trim()
    .split("\n")
    .map((line) => Point.parse(JSON.parse(line)));
  return points.filter((p, i) => i > 0 && p.lr !== points[i - 1]?.lr).map((p) => p.step);
}

/** lrChangeSteps of rank `rank`'s trace in `runDir`. */
export async function lrChanges(runDir: string, rank: number): Promise<number[]> {
  return lrChangeSteps(await readFile(join(runDir, `lr.rank${rank}.jsonl`), "utf8"));
}
