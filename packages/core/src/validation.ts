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
