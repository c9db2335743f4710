// `runctl <cloud> train` has two forms, told apart by what is on disk: the script of a new machine
// first, or a live machine's id and then the script; anything else is an error naming both.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { trainForm } from "../src/remote-train.ts";

const words = { cloud: "aws", machine: "instance" };
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "runctl-train-form-"));
  await writeFile(join(dir, "train.py"), "print('hi')\n");
  await mkdir(join(dir, "i-0abc"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it("an existing file first is the script of a new machine; what follows is its arguments", () => {
  expect(trainForm(["train.py", "--epochs", "3"], dir, words)).toEqual({
    kind: "new",
    script: "train.py",
    args: ["--epochs", "3"],
  });
});

it("a machine id followed by an existing file sends the run to that machine", () => {
  expect(trainForm(["i-0abc123", "train.py", "--epochs", "3"], dir, words)).toEqual({
    kind: "live",
    machine: "i-0abc123",
    script: "train.py",
    args: ["--epochs", "3"],
  });
  // A directory named like the machine is not a script.
  expect(trainForm(["i-0abc", "train.py"], dir, words)).toMatchObject({ kind: "live", machine: "i-0abc" });
});

it("neither form: a UserError whose hint names both", () => {
  for (const argv of [["nope.py"], ["i-0abc123", "nope.py"], []]) {
    let caught: unknown;
    try {
      trainForm(argv, dir, words);
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({ code: "script_not_found" });
    expect((caught as { hint: string }).hint).toContain("runctl aws train <script> [-- args]");
    expect((caught as { hint: string }).hint).toContain("runctl aws train <instance-id> <script> [-- args]");
  }
});
