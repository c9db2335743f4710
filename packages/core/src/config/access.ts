/** Reading one value out of a loaded configuration (`runctl config get`). */
import { UserError } from "../errors.ts";
import { CORE_SECTIONS, type ConfigSections, configSchemaWith } from "./schema.ts";
import { keysOf, schemaAt } from "./shape.ts";
import { closestMatch } from "./suggest.ts";
import { dottedKey, splitDottedKey, valueAt } from "./tree.ts";

/**
 * The value at `dottedKey` (`nats.url`, or a whole section: `nats`).
 * A key the schema knows but nobody set (an optional like `nats.url`) gives
 * undefined; a key neither the schema nor the config has throws UserError
 * `config_unknown_key`, suggesting the nearest known key. Pass the provider
 * `sections` to have their unset keys recognised too.
 */
export function getConfigValue(
  config: object,
  dottedKeyText: string,
  sections: ConfigSections = {},
): unknown {
  const path = splitDottedKey(dottedKeyText);
  const schema = configSchemaWith(sections);
  if (path !== undefined) {
    const value = valueAt(config, path);
    if (value !== undefined || schemaAt(schema, path) !== undefined) return value;
  }
  const parentPath = path?.slice(0, -1) ?? [];
  const parentSchema = parentPath.length === 0 ? undefined : schemaAt(schema, parentPath);
  const candidates =
    parentPath.length === 0
      ? [...CORE_SECTIONS, ...Object.keys(sections), ...Object.keys(config)]
      : [
          ...(parentSchema ? (keysOf(parentSchema) ?? []) : []),
          ...Object.keys((valueAt(config, parentPath) as object | undefined) ?? {}),
        ];
  const near = path === undefined ? undefined : closestMatch(path.at(-1) ?? "", new Set(candidates));
  const nearKey = near === undefined ? undefined : dottedKey([...parentPath, near]);
  throw new UserError(`Unknown config key: ${dottedKeyText}${nearKey ? ` (did you mean ${nearKey}?)` : ""}`, {
    code: "config_unknown_key",
    hint: nearKey
      ? `Use \`runctl config get ${nearKey}\`.`
      : "Run `runctl config show` to list the keys; provider sections appear once their plugin is installed.",
    details: { key: dottedKeyText, ...(nearKey ? { suggestion: nearKey } : {}) },
  });
}
