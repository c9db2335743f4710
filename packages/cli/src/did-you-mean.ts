/**
 * "Did you mean …" for mistyped commands: the nearest known command or topic
 * by edit distance (with transpositions, so `lcoal` → `local`).
 */

/** Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, at(i - 2, j - 2) + 1);
      const row = d[i];
      if (row) row[j] = best;
    }
  }
  return at(a.length, b.length);
}

/**
 * `id` is what oclif looked up (`lcoal:train.py`: words joined by `:`, the
 * command's arguments included). Returns the words up to the first that is
 * not a known command or topic, and the nearest known id to them, if any is
 * near enough (at most a third of the word's letters wrong).
 */
export function suggestCommand(
  id: string,
  known: readonly string[],
): { unknown: string; suggestion?: string } {
  const words = id.split(":");
  const ids = new Set(known);
  let depth = 0;
  while (depth < words.length && ids.has(words.slice(0, depth + 1).join(":"))) depth++;
  const unknown = words.slice(0, depth + 1).join(":");
  const word = words[depth] ?? "";
  const parent = words.slice(0, depth).join(":");
  let best: { id: string; distance: number } | undefined;
  for (const candidate of ids) {
    const parts = candidate.split(":");
    if (parts.length !== depth + 1 || parts.slice(0, depth).join(":") !== parent) continue;
    const distance = editDistance(word, parts[depth] ?? "");
    if (!best || distance < best.distance || (distance === best.distance && candidate < best.id)) {
      best = { id: candidate, distance };
    }
  }
  const limit = Math.max(1, Math.floor(word.length / 3));
  return best && best.distance <= limit ? { unknown, suggestion: best.id } : { unknown };
}
