/**
 * EC2's `Filter.N.Name` / `Filter.N.Value.M` semantics: values of one filter are ORed, filters
 * are ANDed, `*` and `?` are wildcards, and a filter name the resource does not know is refused.
 */
import { Ec2Failure } from "./ec2-failure.ts";

export interface FilterInput {
  Name: string;
  Value: string[];
}

/** Values a resource has for a filter name; undefined when the name is not a filter of this resource. */
export type FilterValues = (name: string) => readonly string[] | undefined;

function pattern(value: string): RegExp {
  const escaped = value
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`, "s");
}

export function checkFilterNames(filters: readonly FilterInput[], known: (name: string) => boolean): void {
  for (const f of filters) {
    if (!known(f.Name))
      throw new Ec2Failure(400, "InvalidParameterValue", `The filter '${f.Name}' is invalid`);
  }
}

export function matchesFilters(filters: readonly FilterInput[], values: FilterValues): boolean {
  return filters.every((f) => {
    const have = values(f.Name) ?? [];
    const patterns = f.Value.map(pattern);
    return have.some((v) => patterns.some((p) => p.test(v)));
  });
}

/** `tag:Name` and friends, common to every taggable resource. */
export function tagFilterValues(
  name: string,
  tags: ReadonlyMap<string, string>,
): readonly string[] | undefined {
  if (name.startsWith("tag:")) {
    const v = tags.get(name.slice(4));
    return v === undefined ? [] : [v];
  }
  if (name === "tag-key") return [...tags.keys()];
  if (name === "tag-value") return [...tags.values()];
  return undefined;
}

export function isTagFilter(name: string): boolean {
  return name.startsWith("tag:") || name === "tag-key" || name === "tag-value";
}
