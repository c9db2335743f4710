// RunPod's failures in runctl's provider codes: fallback and retries branch on them, so each of
// RunPod's ways of saying "no capacity", "bad key" and "slow down" must land on the right code.
// The errors are graphql-request's own ClientError, as the client raises them.
import { ClientError } from "graphql-request";
import { expect, it } from "vitest";
import { RunPodApi, runpodError } from "../src/runpod-wire.ts";

const URL = "http://127.0.0.1:1/graphql";

function clientError(status: number, message?: string): ClientError {
  return new ClientError(
    { status, headers: new Headers(), ...(message ? { errors: [{ message }] } : {}) } as never,
    { query: "mutation { podFindAndDeployOnDemand { id } }" },
  );
}

it("classifies RunPod's refusals by status and message", () => {
  const code = (status: number, message?: string) =>
    runpodError(clientError(status, message), "creating a pod", URL).code;
  expect(
    code(
      200,
      "There are no longer any instances available with the requested specifications. Please refresh and try again.",
    ),
  ).toBe("capacity");
  expect(code(200, "There are not enough free GPUs on the host machine to start this pod.")).toBe("capacity");
  expect(code(401)).toBe("auth");
  expect(code(200, "Unauthorized request, please check your API key.")).toBe("auth");
  expect(code(429)).toBe("throttled");
  expect(code(400, 'Cannot query field "nope" on type "Pod".')).toBe("invalid_spec");
  expect(code(502)).toBe("runpod_unavailable");
  expect(code(404)).toBe("runpod_error");
});

it("names the API URL and says it did not answer when nothing listens there", async () => {
  const api = new RunPodApi({ url: URL, apiKey: "k", readAttempts: 1 });
  const error = await api.pods().catch((e: unknown) => e);
  expect(error).toMatchObject({ code: "runpod_unreachable" });
  expect(String((error as Error).message)).toContain(URL);
});
