/**
 * What a validator returns. Python validators return a tuple for several
 * arguments; TypeScript has no tuples at runtime, so several arguments are
 * tagged with this helper and any other return value is one value:
 *
 * - `return x` (any value, arrays and objects included): `apply(ctx, x, {})`;
 * - `return Validated.args(a, b)`: `apply(ctx, a, b, {})`;
 * - `return Validated.call([a], { k: v })`: `apply(ctx, a, { k: v })`;
 * - `return undefined` (a validator that only checks): the command's args and
 *   kwargs are applied as sent.
 *
 * The ack's `value` follows from what apply receives: the one argument, the
 * list of several, `{args, kwargs}` when there are kwargs, none without any.
 */

const BRAND = Symbol.for("@runctl/control.Validated");

export type Kwargs = Record<string, unknown>;

export interface ValidatedCall {
  readonly [BRAND]: true;
  readonly args: readonly unknown[];
  readonly kwargs: Readonly<Kwargs>;
}

export const Validated = {
  /** Several positional arguments, no keyword arguments. */
  args(...args: unknown[]): ValidatedCall {
    return { [BRAND]: true, args, kwargs: {} };
  },
  /** Positional and keyword arguments. */
  call(args: readonly unknown[], kwargs: Kwargs = {}): ValidatedCall {
    return { [BRAND]: true, args: [...args], kwargs: { ...kwargs } };
  },
  is(value: unknown): value is ValidatedCall {
    return typeof value === "object" && value !== null && BRAND in value;
  },
} as const;
