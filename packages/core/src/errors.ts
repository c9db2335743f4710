/**
 * One error hierarchy for everything runctl shows a user. Each error carries a
 * stable `code` for scripts, a message, and a `hint` naming the concrete next
 * step; the class decides the process exit code so the CLI never guesses.
 */

export type ErrorKind = "user" | "provider" | "config" | "internal";

/** Exit codes are part of the CLI contract: scripts branch on them. */
export const EXIT_CODES: Readonly<Record<ErrorKind, number>> = {
  user: 1,
  provider: 2,
  config: 3,
  internal: 1,
};

export interface ErrorEnvelope {
  success: false;
  error: { code: string; message: string; hint?: string; details?: Record<string, unknown> };
}

export interface RunctlErrorOptions {
  code: string;
  hint?: string;
  details?: Record<string, unknown>;
  cause?: unknown;
}

export abstract class RunctlError extends Error {
  abstract readonly kind: ErrorKind;
  readonly code: string;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(message: string, options: RunctlErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.hint = options.hint;
    this.details = options.details;
  }

  get exitCode(): number {
    return EXIT_CODES[this.kind];
  }

  toEnvelope(): ErrorEnvelope {
    const error: ErrorEnvelope["error"] = { code: this.code, message: this.message };
    if (this.hint !== undefined) error.hint = this.hint;
    if (this.details !== undefined) error.details = this.details;
    return { success: false, error };
  }
}

/** Bad input from the person at the keyboard: flags, arguments, paths. Exit 1. */
export class UserError extends RunctlError {
  readonly kind = "user" as const;
}

/** A cloud or provider refused or failed. Exit 2. */
export class ProviderError extends RunctlError {
  readonly kind = "provider" as const;
}

/** Configuration that cannot be read or does not validate. Exit 3. */
export class ConfigError extends RunctlError {
  readonly kind = "config" as const;
}

/** A bug or an unexpected failure of ours; the hint asks for a report. Exit 1. */
export class InternalError extends RunctlError {
  readonly kind = "internal" as const;
}

/**
 * Codes every provider uses for the failures callers branch on: spot
 * fallback on `capacity`, retries with backoff on `throttled`, a refusal
 * without retry on `quota`, `auth` and `invalid_spec`.
 */
export const PROVIDER_ERROR_CODES = [
  "not_found",
  "unsupported",
  "protected",
  "capacity",
  "quota",
  "auth",
  "invalid_spec",
  "throttled",
] as const;
export type ProviderErrorCode = (typeof PROVIDER_ERROR_CODES)[number];

export function hasErrorCode(error: unknown, ...codes: string[]): boolean {
  return isRunctlError(error) && codes.includes(error.code);
}

export function isRunctlError(value: unknown): value is RunctlError {
  return value instanceof RunctlError;
}

/**
 * Turns anything thrown into a RunctlError so the CLI has one path for output.
 * Errors of ours pass through; anything else becomes an InternalError that keeps
 * the original as its cause.
 */
export function toRunctlError(value: unknown): RunctlError {
  if (isRunctlError(value)) return value;
  const message = value instanceof Error ? value.message : String(value);
  return new InternalError(message, {
    code: "internal",
    hint: "This looks like a bug in runctl; rerun with DEBUG=runctl* and report it with the output.",
    cause: value,
  });
}
