/**
 * A training run that ended badly is reported like any error (envelope, hint),
 * but the process exits with the run's own exit code, as a shell user expects
 * from `runctl local train.py`.
 */
import { UserError } from "@runctl/core";

export class RunEndedError extends UserError {
  readonly #exitCode: number;

  constructor(
    message: string,
    options: { code: string; hint: string; exitCode: number; details: Record<string, unknown> },
  ) {
    super(message, options);
    this.#exitCode = options.exitCode;
  }

  override get exitCode(): number {
    return this.#exitCode;
  }
}
