/**
 * What every contract suite hands out: named async cases that any test
 * runner (vitest, node:test, a plain script) can drive, and a runner that
 * reports each case's outcome for scripts.
 */
export interface ContractCase {
  name: string;
  run: () => Promise<void>;
}

export interface ContractResult {
  name: string;
  ok: boolean;
  error?: string;
}

/** Runs the cases one after the other; a failing case is reported, never thrown. */
export async function runContractCases(cases: readonly ContractCase[]): Promise<ContractResult[]> {
  const results: ContractResult[] = [];
  for (const c of cases) {
    try {
      await c.run();
      results.push({ name: c.name, ok: true });
    } catch (error) {
      results.push({
        name: c.name,
        ok: false,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  return results;
}
