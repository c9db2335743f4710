/**
 * Reads the structure of a zod schema: which keys a table allows and what
 * schema sits at a dotted path. Used for "did you mean" suggestions, for
 * `config get` on unset optional keys, and to keep env/flag strings as strings
 * where the schema wants one.
 */
import type { z } from "zod";

// Only the definition fields we walk; zod's own def types are a union too
// wide to narrow without casts at every step.
interface WalkableDef {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  in?: z.ZodType;
  getter?: () => z.ZodType;
  valueType?: z.ZodType;
  element?: z.ZodType;
}

function defOf(schema: z.ZodType): WalkableDef {
  return schema._zod.def as unknown as WalkableDef;
}

/** Strips optional/default/nullable/pipe wrappers down to the schema that decides the shape. */
export function unwrapSchema(schema: z.ZodType): z.ZodType {
  let current = schema;
  for (let depth = 0; depth < 32; depth++) {
    const def = defOf(current);
    const next =
      def.innerType ?? (def.type === "pipe" ? def.in : def.type === "lazy" ? def.getter?.() : undefined);
    if (next === undefined) return current;
    current = next;
  }
  return current;
}

/** The keys a table schema allows, or undefined when the schema is not a fixed-shape table. */
export function keysOf(schema: z.ZodType): string[] | undefined {
  const def = defOf(unwrapSchema(schema));
  return def.type === "object" && def.shape ? Object.keys(def.shape) : undefined;
}

/** The schema at `path` (numeric steps enter arrays), or undefined when the path leaves the schema. */
export function schemaAt(root: z.ZodType, path: readonly PropertyKey[]): z.ZodType | undefined {
  let current: z.ZodType = root;
  for (const key of path) {
    const def = defOf(unwrapSchema(current));
    let next: z.ZodType | undefined;
    if (typeof key === "number") next = def.type === "array" ? def.element : undefined;
    else if (def.type === "object" && def.shape && typeof key === "string" && Object.hasOwn(def.shape, key))
      next = def.shape[key];
    else if (def.type === "record") next = def.valueType;
    if (next === undefined) return undefined;
    current = next;
  }
  return current;
}
