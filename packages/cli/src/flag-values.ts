/**
 * Flag values with a shape of their own, checked the same way by every
 * command that takes them: JSON objects (`--config`, `--kwargs`) and GPU lists.
 */
import { assertJsonDepth, MAX_JSON_DEPTH, UserError } from "@runctl/core";

/**
 * A JSON object given on the command line; `code` names the flag's error
 * (`bad_run_config`, `bad_kwargs`), `example` is a valid value for the hint.
 */
export function parseJsonObjectFlag(
  text: string,
  flag: string,
  code: string,
  example: string,
): Record<string, unknown> {
  const hint = `Pass a JSON object, e.g. ${flag} '${example}'.`;
  // Checked on the text, before parsing: a value nested thousands of levels
  // deep would be stored, then crash every reader of it (the server refuses it too).
  try {
    assertJsonDepth(text, MAX_JSON_DEPTH, flag);
  } catch (error) {
    throw new UserError((error as Error).message, {
      code,
      hint: `Flatten ${flag} to at most ${MAX_JSON_DEPTH} levels of nested objects and arrays.`,
      details: { max_depth: MAX_JSON_DEPTH },
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UserError(`${flag} is not JSON: ${(error as Error).message}`, { code, hint });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UserError(`${flag} must be a JSON object`, { code, hint });
  }
  return value as Record<string, unknown>;
}

const GPU_LIST = /^\d+(,\d+)*$/;

/** `--gpus 0,1`: comma-separated GPU indices, each once, returned as given (CUDA_VISIBLE_DEVICES form). */
export function checkGpuList(text: string): string {
  if (!GPU_LIST.test(text)) {
    throw new UserError(`--gpus "${text}" is not a list of GPU indices`, {
      code: "bad_gpus",
      hint: "Use comma-separated indices, e.g. --gpus 0,1.",
    });
  }
  // "0,0" would give two jobs the same GPU, each believing it has its own.
  const ids = text.split(",").map(Number);
  const repeated = ids.find((id, i) => ids.indexOf(id) !== i);
  if (repeated !== undefined) {
    throw new UserError(`--gpus "${text}" lists GPU ${repeated} more than once`, {
      code: "bad_gpus",
      hint: "List each GPU index once, e.g. --gpus 0,1.",
    });
  }
  return text;
}
