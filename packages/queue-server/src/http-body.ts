/**
 * Request bodies of the job server, read under a byte limit: a declared
 * Content-Length over the limit is refused before reading anything, and the
 * bytes are counted as they stream so a chunked body is cut off as soon as it
 * crosses the limit (nothing past the limit is ever buffered).
 */
import type { IncomingMessage } from "node:http";
import { describeIssues, issuesOf, JSON_TOO_DEEP, jsonTextDepth, MAX_JSON_DEPTH } from "@runctl/core";
import type { z } from "zod";
import { HttpError } from "./http-response.ts";

/**
 * After a refusal the rest of the body is read and dropped, up to this many
 * bytes, so the client sees the answer instead of a reset connection; past
 * it the connection is closed.
 */
export const DISCARD_LIMIT_BYTES = 16 * 1024 * 1024;

/** The client went away before sending the whole body. */
export class BodyAbortedError extends Error {
  constructor() {
    super("the client closed the connection before the end of the body");
    this.name = "BodyAbortedError";
  }
}

export function declaredLength(req: IncomingMessage): number | undefined {
  const header = req.headers["content-length"];
  if (header === undefined) return undefined;
  const n = Number(header);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** True when the request announces a body (a length, or chunked transfer). */
export function announcesBody(req: IncomingMessage): boolean {
  return req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
}

export function bodyTooLarge(limit: number): HttpError {
  return new HttpError(413, "body_too_large", `The request body is larger than ${limit} bytes`, {
    hint: "Send less per request: JSON bodies are limited to 1 MiB, file uploads to 64 MiB per request (upload in chunks with ?offset=).",
  });
}

/**
 * Feeds the body to `sink` chunk by chunk; an async sink pauses the stream
 * until it is done (backpressure). Resolves with the byte count; rejects with
 * 413 as soon as the count passes `limit`, or BodyAbortedError.
 */
export function pumpBody(
  req: IncomingMessage,
  limit: number,
  sink: (chunk: Buffer) => void | Promise<void>,
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let total = 0;
    let writing = false;
    let ended = false;
    let settled = false;
    const settle = (error?: unknown) => {
      if (settled) return;
      settled = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
      if (error === undefined) resolve(total);
      else reject(error);
    };
    const onData = (chunk: Buffer) => {
      if (settled) return;
      total += chunk.length;
      if (total > limit) {
        settle(bodyTooLarge(limit));
        return;
      }
      let result: void | Promise<void>;
      try {
        result = sink(chunk);
      } catch (error) {
        settle(error);
        return;
      }
      if (result instanceof Promise) {
        writing = true;
        req.pause();
        result.then(
          () => {
            writing = false;
            if (ended) settle();
            else req.resume();
          },
          (error: unknown) => settle(error),
        );
      }
    };
    const onEnd = () => {
      ended = true;
      if (!writing) settle();
    };
    const onError = () => settle(new BodyAbortedError());
    const onClose = () => {
      if (!ended) settle(new BodyAbortedError());
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

/**
 * Reads and drops what is left of a body after the answer was decided, up to
 * DISCARD_LIMIT_BYTES; then closes the connection.
 */
export function discardRest(req: IncomingMessage): void {
  if (req.readableEnded || req.destroyed) return;
  let seen = 0;
  req.on("data", (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > DISCARD_LIMIT_BYTES) req.socket.destroy();
  });
  req.on("error", () => {});
  req.resume();
}

function isJsonMediaType(header: string): boolean {
  const type = header.split(";")[0]?.trim().toLowerCase() ?? "";
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

/**
 * The body parsed as JSON: 415 for another media type, 413 over `limit`, 422
 * `json_too_deep` past MAX_JSON_DEPTH, 400 `bad_json` when unparsable.
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const type = req.headers["content-type"];
  if (type !== undefined && !isJsonMediaType(type)) {
    throw new HttpError(415, "unsupported_media_type", `Expected an application/json body, got ${type}`, {
      hint: "Send JSON with `Content-Type: application/json`.",
    });
  }
  const declared = declaredLength(req);
  if (declared !== undefined && declared > limit) throw bodyTooLarge(limit);
  const chunks: Buffer[] = [];
  await pumpBody(req, limit, (chunk) => {
    chunks.push(chunk);
  });
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") {
    throw new HttpError(400, "bad_json", "The request body is empty; this endpoint takes a JSON object", {
      hint: "Send a JSON object with `Content-Type: application/json`.",
    });
  }
  // Before parsing: JSON.parse, zod's recursive schemas and every client that
  // later reads the stored value may overflow their stacks on deep nesting.
  if (jsonTextDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    throw new HttpError(
      422,
      JSON_TOO_DEEP,
      `The request body is nested more than ${MAX_JSON_DEPTH} levels deep (the limit for JSON in runctl)`,
      {
        hint: `Flatten the body (configs included) to at most ${MAX_JSON_DEPTH} levels of nested objects and arrays.`,
      },
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, "bad_json", `The request body is not valid JSON: ${(error as Error).message}`, {
      hint: "Send a JSON object with `Content-Type: application/json`.",
    });
  }
}

/** `value` parsed with `schema`, or 422 `invalid_body` naming every offending field. */
export function parseBody<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new HttpError(422, "invalid_body", `Invalid ${what}: ${describeIssues(issuesOf(result.error))}`, {
    hint: "Fix the named fields; the request bodies are documented in docs/job-queue.md.",
  });
}
