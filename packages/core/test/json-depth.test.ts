// The shared nesting limit of JSON boundaries: counted without recursion, so hostile depth is cheap.
import { expect, it } from "vitest";
import { assertJsonDepth, jsonDepth, MAX_JSON_DEPTH, UserError } from "../src/mod.ts";

function nested(levels: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = i % 2 === 0 ? [value] : { k: value };
  return value;
}

it("counts levels of arrays and objects, stops past the limit, and refuses deeper values by name", () => {
  expect(jsonDepth(1)).toBe(0);
  expect(jsonDepth({ a: [], b: [[1]] })).toBe(3);
  expect(jsonDepth(nested(MAX_JSON_DEPTH))).toBe(MAX_JSON_DEPTH);
  expect(() => assertJsonDepth(nested(MAX_JSON_DEPTH))).not.toThrow();
  // 100,000 levels: a recursive walker would overflow the stack here.
  expect(jsonDepth(nested(100_000))).toBe(MAX_JSON_DEPTH + 1);
  let error: unknown;
  try {
    assertJsonDepth(nested(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH, "--kwargs");
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(UserError);
  expect(error).toMatchObject({
    code: "json_too_deep",
    message: expect.stringMatching(/^--kwargs is nested more than 64 levels deep/),
  });
  expect(() => assertJsonDepth([[1]], 1)).toThrow(UserError);
});
