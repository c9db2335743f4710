/**
 * Glue between zod and the error hierarchy: every boundary parses with a schema
 * and, on failure, raises an error that names the offending keys.
 */
import type { z } from "zod";
import { ConfigError, ProviderError, type RunctlError, UserError } from "./errors.ts";

export interface Issue {
  /** Dotted path to the value, e.g. `aws.region`; empty for the root. */
  path: string;
  message: string;
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path
    .map((p) => (typeof p === "number" ? `[${p}]` : String(p)))
    .join(".")
    .replace(/\.\[/g, "[");
}

/** Flattens zod issues; unknown keys become one issue per key so each is named. */
export function issuesOf(error: z.ZodError): Issue[] {
  const out: Issue[] = [];
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        out.push({ path: formatPath([...issue.path, key]), message: "unknown key" });
      }
      continue;
    }
    out.push({ path: formatPath(issue.path), message: issue.message });
  }
  return out;
}

export function describeIssues(issues: Issue[]): string {
  return issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("; ");
}

export type BoundaryKind = "user" | "config" | "provider";

export interface ParseContext {
  /** What was being read, for the message: "flag --gpus", "EC2 response", "/x/.runctl.toml". */
  what: string;
  kind: BoundaryKind;
  code?: string;
  hint?: string;
}

/** Parses `value` with `schema` or throws the error class matching the boundary. */
export function parseAt<S extends z.ZodType>(schema: S, value: unknown, ctx: ParseContext): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = issuesOf(result.error);
  const message = `Invalid ${ctx.what}: ${describeIssues(issues)}`;
  const options = {
    code: ctx.code ?? `invalid_${ctx.kind === "user" ? "input" : ctx.kind}`,
    hint: ctx.hint ?? defaultHint(ctx.kind),
    details: { issues },
  };
  const error: RunctlError =
    ctx.kind === "config"
      ? new ConfigError(message, options)
      : ctx.kind === "provider"
        ? new ProviderError(message, options)
        : new UserError(message, options);
  throw error;
}

function defaultHint(kind: BoundaryKind): string {
  switch (kind) {
    case "config":
      return "Fix the named keys, then run `runctl config validate`.";
    case "provider":
      return "The provider answered with data runctl does not understand; check the provider plugin's version.";
    default:
      return "Check the value against `runctl <command> --help`.";
  }
}

/**
 * Deepest nesting of arrays and objects runctl accepts at a JSON boundary
 * (control commands, NATS payloads, HTTP bodies, `--config`): far beyond any
 * real config or command, and shallow enough that every recursive walker
 * (JSON.stringify, zod, msgpack, Python's json) handles it without running
 * out of stack.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * How deeply `value` nests arrays and objects (a scalar is 0, `[]` and `{}` are
 * 1), counted without recursion and without looking further than `max + 1`
 * levels, so a hostile value costs no stack and little time.
 */
export function jsonDepth(value: unknown, max = MAX_JSON_DEPTH): number {
  let deepest = 0;
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const v = item.value;
    if (typeof v !== "object" || v === null) continue;
    const depth = item.depth + 1;
    if (depth > deepest) deepest = depth;
    if (depth > max) return depth;
    const children = Array.isArray(v) ? v : Object.values(v);
    for (const child of children) stack.push({ value: child, depth });
  }
  return deepest;
}

/** Throws UserError `json_too_deep` when `value` nests arrays/objects more than `max` levels. */
export function assertJsonDepth(value: unknown, max = MAX_JSON_DEPTH, what = "value"): void {
  if (jsonDepth(value, max) > max) {
    throw new UserError(`${what} is nested more than ${max} levels deep`, {
      code: "json_too_deep",
      hint: `Flatten it: runctl accepts at most ${max} levels of nested arrays and objects.`,
      details: { max },
    });
  }
}
