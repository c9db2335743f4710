// `runctl ctl` arguments that JSON.parse would change silently, or that would crash a recursive
// writer, against a bare queue directory (-q): each is refused with a reason, or carried exactly.
import { appendFile, mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { z } from "zod";
import { runctl, runctlJson, type Workspace, workspace } from "../src/runctl-cli.ts";

const Refused = z.object({
  success: z.literal(false),
  error: z.object({ code: z.string(), message: z.string() }).loose(),
});

let ws: Workspace;
let queue: string;
beforeAll(async () => {
  ws = await workspace();
  queue = join(ws.home, "queue");
  await mkdir(queue);
});
afterAll(async () => {
  await rm(ws.home, { recursive: true, force: true });
});

async function lines(): Promise<string[]> {
  const text = await readFile(join(queue, "commands.jsonl"), "utf8").catch(() => "");
  return text.split("\n").slice(0, -1);
}

it("refuses 1e999, integers beyond 2^53 and 30,000-deep arguments, and carries __proto__ in --kwargs", async () => {
  const deep = `${"[".repeat(30_000)}1${"]".repeat(30_000)}`;
  for (const [args, code, reason] of [
    [["x", "1e999"], "bad_argument", /too large for a JSON number/],
    [["x", "9007199254740993"], "bad_argument", /beyond 2\^53/],
    [["x", deep], "bad_argument", /nested more than 64 levels/],
    [["x", "1", "--kwargs", '{"n": 12345678901234567890}'], "bad_kwargs", /beyond 2\^53/],
    [["x", "1", "--kwargs", `{"a": ${deep}}`], "bad_kwargs", /nested more than 64 levels/],
  ] as const) {
    const r = await runctlJson(["ctl", "-q", queue, ...args], ws);
    expect(r.code, r.stderr).toBe(1);
    const { error } = Refused.parse(r.doc);
    expect(error.code).toBe(code);
    expect(error.message).toMatch(reason);
  }
  expect(await lines()).toEqual([]);

  // Exactly representable values go through unchanged, a __proto__ key included.
  const ok = await runctlJson(
    ["ctl", "-q", queue, "x", "9007199254740991", "--kwargs", '{"__proto__": {"p": 1}}'],
    ws,
  );
  expect(ok.code, ok.stderr).toBe(0);
  const [line] = await lines();
  expect(line).toContain('"args":[9007199254740991]');
  expect(line).toContain('"kwargs":{"__proto__":{"p":1}}');
});

it("ctl history and status survive a command line nested 30,000 deep, reporting it as malformed", async () => {
  const deep = `${"[".repeat(30_000)}${"]".repeat(30_000)}`;
  await appendFile(join(queue, "commands.jsonl"), `{"id":"deep","path":"x","args":${deep}}\n`);
  const history = await runctl(["ctl", "-q", queue, "history"], ws);
  expect(history.code, history.stderr).toBe(0);
  expect(history.stdout).toMatch(/malformed: malformed command: nested more than 64 levels deep/);
  const json = await runctlJson(["ctl", "-q", queue, "history"], ws);
  expect(json.code, json.stderr).toBe(0);
});
