import { defineConfig } from "vitest/config";

export default defineConfig({
  // template/ holds the scaffold's own files (its test runs in a generated package, with node:test).
  test: { include: ["test/**/*.test.ts"] },
});
