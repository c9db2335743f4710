/**
 * A cloud launch's fallback order and each step taken, in words, as `runctl <cloud> create`
 * prints them. A launch that succeeds at its first step prints nothing; the order is printed
 * at the first refusal, then each step as it is taken. Every provider with a fallback order
 * reports the same way, so users read one format whichever cloud they use.
 */

/** The events a provider's launch emits while it walks its fallback order. */
export type FallbackStepEvent<S> =
  | { kind: "plan"; steps: readonly S[] }
  | { kind: "refused"; step: S; code: string; next: S | undefined }
  | { kind: "skipped"; step: S; reason: string; next: S | undefined }
  | { kind: "launched"; step: S };

export interface FallbackReport<E> {
  /** The line for one event, if it has one. */
  line(event: E): string | undefined;
  /** A launch-step listener that writes the lines, the order only once something was refused. */
  printer(write: (line: string) => void): (event: E) => void;
}

/**
 * `label` starts every line (`runctl aws`); `launched` words a successful step when it is news
 * (an earlier attempt's machine adopted, say).
 */
export function fallbackReport<S, E extends FallbackStepEvent<S>>(
  label: string,
  describe: (step: S) => string,
  launched: (event: Extract<E, { kind: "launched" }>) => string | undefined = () => undefined,
): FallbackReport<E> {
  const then = (next: S | undefined) => (next ? `; trying ${describe(next)}` : "; nothing left to try");
  const line = (event: E): string | undefined => {
    switch (event.kind) {
      case "plan":
        return event.steps.length > 1
          ? `${label}: launch order: ${event.steps.map((s, i) => `${i + 1}. ${describe(s)}`).join(", ")}`
          : undefined;
      case "refused":
        return `${label}: ${describe(event.step)} refused (${event.code})${then(event.next)}`;
      case "skipped":
        return `${label}: ${describe(event.step)} skipped: ${event.reason}${then(event.next)}`;
      case "launched":
        return launched(event as Extract<E, { kind: "launched" }>);
    }
  };
  const printer = (write: (line: string) => void) => {
    let plan: E | undefined;
    return (event: E) => {
      if (event.kind === "plan") {
        plan = event;
        return;
      }
      if ((event.kind === "refused" || event.kind === "skipped") && plan !== undefined) {
        const order = line(plan);
        plan = undefined;
        if (order !== undefined) write(order);
      }
      const text = line(event);
      if (text !== undefined) write(text);
    };
  };
  return { line, printer };
}
