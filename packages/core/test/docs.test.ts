// The configuration reference quotes the starter file; keep the two identical.
import { readFile } from "node:fs/promises";
import { expect, it } from "vitest";
import { starterConfig } from "../src/mod.ts";

it("docs/configuration.md lists exactly what `runctl init` writes", async () => {
  const doc = await readFile(new URL("../../../docs/configuration.md", import.meta.url), "utf8");
  expect(doc).toContain(`\`\`\`toml\n${starterConfig()}\`\`\``);
});
